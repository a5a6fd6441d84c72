# Placeholder until this module is written; replaced by its owner.
from django.http import Http404
from django.views import View


def schema_view(request, *args, **kwargs):
    raise Http404("not built yet")


class FormSchemaView(View):
    pass


SubmissionCreateView = SubmissionStatusView = FormSchemaView
