# Placeholder until the demo pages are written.
from django.http import HttpResponse


def home(request):
    return HttpResponse("esp_forms demo")


mailbox = home
