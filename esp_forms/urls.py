"""Public routes of esp_forms. Include at the site root: ``path("", include("esp_forms.urls"))``."""

from django.urls import path, re_path

from esp_forms import webhooks
from esp_forms.api import views as api_views
from esp_forms.views import confirm, metrics, sandbox, signup

app_name = "esp_forms"

urlpatterns = [
    path("forms/<slug:form_type>/", signup.form_page, name="form"),
    path("confirm/<str:token>/", confirm.confirm_page, name="confirm"),
    path("sandbox/confirm/<str:token>/", sandbox.confirm_contact, name="sandbox_confirm"),
    path("webhooks/<str:provider>/<int:account_id>/", webhooks.webhook_view, name="webhook"),
    path("esp-forms/metrics/", metrics.metrics_view, name="metrics"),
    path("api/esp-forms/schema/", api_views.schema_view, name="api_schema"),
    path("api/esp-forms/forms/<slug:form_type>/", api_views.FormSchemaView.as_view(),
         name="api_form"),
    path("api/esp-forms/forms/<slug:form_type>/submissions/",
         api_views.SubmissionCreateView.as_view(), name="api_submit"),
    path("api/esp-forms/submissions/<uuid:pk>/", api_views.SubmissionStatusView.as_view(),
         name="api_status"),
    # Last: whatever else is under the API's prefix answers JSON, not the site's HTML 404.
    re_path(r"^api/esp-forms/", api_views.api_not_found, name="api_not_found"),
]
