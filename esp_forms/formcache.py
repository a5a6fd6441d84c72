"""Each process keeps the active forms' configuration (form, account, fields) in memory.

Every page with a form in its footer and every signup reads it, and it changes only when an
admin saves something, so the submit path, the template tag and the schema endpoint read it
from here with no query. Saving or deleting a form, a field or an account clears this
process's copy at once (signals); other processes read it again within
``FORM_CACHE_SECONDS``. The cached objects are shared between requests: read them, never
change them.
"""

from __future__ import annotations

import threading
import time

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from esp_forms.conf import get_setting
from esp_forms.models import FormField, ProviderAccount, SignupForm

_lock = threading.Lock()
# form_type -> (expires at, form or None for "no active form of that type")
_forms: dict[str, tuple[float, SignupForm | None]] = {}


def active_form(form_type: str) -> SignupForm | None:
    """The active form ``form_type`` with its account and fields loaded, or None."""
    now = time.monotonic()
    entry = _forms.get(form_type)
    if entry is not None and entry[0] > now:
        return entry[1]
    form = (SignupForm.objects.select_related("account").prefetch_related("fields")
            .filter(form_type=form_type, is_active=True).first())
    ttl = float(get_setting("FORM_CACHE_SECONDS") or 0)
    if ttl > 0:
        with _lock:
            _forms[form_type] = (now + ttl, form)
    return form


def clear() -> None:
    with _lock:
        _forms.clear()


@receiver(post_save, sender=SignupForm, dispatch_uid="esp_forms.formcache.form")
@receiver(post_delete, sender=SignupForm, dispatch_uid="esp_forms.formcache.form_deleted")
@receiver(post_save, sender=FormField, dispatch_uid="esp_forms.formcache.field")
@receiver(post_delete, sender=FormField, dispatch_uid="esp_forms.formcache.field_deleted")
@receiver(post_save, sender=ProviderAccount, dispatch_uid="esp_forms.formcache.account")
@receiver(post_delete, sender=ProviderAccount,
          dispatch_uid="esp_forms.formcache.account_deleted")
def _changed(**kwargs: object) -> None:
    # Any change may rename a form type or move a field between forms: start over.
    clear()
