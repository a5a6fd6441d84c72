from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls

from project.urls import urlpatterns as demo_urlpatterns

urlpatterns = [
    path("cms/", include(wagtailadmin_urls)),
    *demo_urlpatterns,
    path("pages/", include(wagtail_urls)),
]
