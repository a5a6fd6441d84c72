"""Signals site code can hook. Each is sent with ``sender=Submission`` and ``submission=``.

- ``submission_delivered``: the provider accepted the contact.
- ``submission_failed``: delivery failed for good (``error`` carries the human message).
- ``optin_confirmed``: the person confirmed the subscription.
- ``optin_unsubscribed``: the person unsubscribed (or was blocked) at the provider.
- ``pre_send``: a stored signup is about to be handed on (``action`` is ``"confirmation"``,
  ``"invitation"`` or ``"delivery"``), inside the transaction that stored it. A receiver that
  returns False, or a string (the reason), holds it for review instead; see esp_forms.abuse.
"""

from django.dispatch import Signal

submission_delivered = Signal()
submission_failed = Signal()
optin_confirmed = Signal()
optin_unsubscribed = Signal()
pre_send = Signal()
