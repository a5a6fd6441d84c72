from django.contrib import admin
from django.urls import include, path

from project import views

urlpatterns = [
    path("", views.home, name="home"),
    path("demo/mail/", views.mailbox, name="demo_mail"),
    path("admin/", admin.site.urls),
    path("", include("esp_forms.urls")),
]
