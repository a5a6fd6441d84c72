from django.urls import include, path

from bench.benchsite import views

urlpatterns = [
    path("bench/floor/", views.FloorView.as_view()),
    path("bench/bare/", views.BareView.as_view()),
    path("bench/inline/", views.InlineView.as_view()),
    path("bench/page-with-forms/", views.page, {"template": "with_forms.html"}),
    path("bench/page-without-forms/", views.page, {"template": "without_forms.html"}),
    path("", include("project.urls")),  # the demo site: its pages, admin and the app
]
