# Placeholder until this module is written.
from django.http import Http404


def webhook_view(request, *args, **kwargs):
    raise Http404("not built yet")
