import os

from django.core.wsgi import get_wsgi_application

from esp_forms.request_body import reject_codec_charsets

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Django decodes the query string in the request's declared charset before any middleware
# runs; a codec "charset" (zlib, base64...) must be answered here (docs/security.md).
application = reject_codec_charsets(get_wsgi_application())
