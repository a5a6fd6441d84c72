from django.contrib import admin
from django.urls import include, path

from project import views

urlpatterns = [
    path("", views.home, name="home"),
    path("demo/mail/", views.mailbox, name="demo_mail"),
    path("admin/", admin.site.urls),
    # The demo's language switcher posts to Django's set_language view.
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("esp_forms.urls")),
]
