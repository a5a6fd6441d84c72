# Placeholder until this module is written; replaced by its owner.
from django.http import Http404


def _placeholder(request, *args, **kwargs):
    raise Http404("not built yet")


form_page = confirm_page = confirm_contact = _placeholder
