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
from collections.abc import Callable

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from esp_forms.conf import get_setting
from esp_forms.models import FormField, ProviderAccount, SignupForm

_lock = threading.RLock()
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


# form id -> (expires at, form with its account and fields), for workers: any form, active or not
_by_id: dict[object, tuple[float, SignupForm | None]] = {}


def form_by_id(form_id: object) -> SignupForm | None:
    """Form ``form_id`` with its account and fields loaded, for a worker delivering a row.

    Cached like :func:`active_form`: a worker sees a changed form or account within
    ``FORM_CACHE_SECONDS`` (at once in the process that saved it).
    """
    now = time.monotonic()
    entry = _by_id.get(form_id)
    if entry is not None and entry[0] > now:
        return entry[1]
    form = (SignupForm.objects.select_related("account").prefetch_related("fields")
            .filter(pk=form_id).first())
    ttl = float(get_setting("FORM_CACHE_SECONDS") or 0)
    if ttl > 0:
        with _lock:
            _by_id[form_id] = (now + ttl, form)
    return form


def clear() -> None:
    with _lock:
        _forms.clear()
        _rendered.clear()
        _by_id.clear()


# (form id, form type, variant, language) -> (expires at, the form's HTML with placeholders)
_rendered: dict[tuple[object, ...], tuple[float, str]] = {}


def rendered(key: tuple[object, ...], render: Callable[[], str]) -> str:
    """The rendered skeleton of a form for ``key``, from ``render()`` once per cache period."""
    now = time.monotonic()
    entry = _rendered.get(key)
    if entry is not None and entry[0] > now:
        return entry[1]
    html = render()
    ttl = float(get_setting("FORM_CACHE_SECONDS") or 0)
    if ttl > 0:
        with _lock:
            _rendered[key] = (now + ttl, html)
    return html


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
