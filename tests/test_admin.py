"""The admin: write-only API keys, per-form counts in one query, read-only submissions."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from esp_forms.admin import annotate_counts
from esp_forms.models import (
    DeliveryStatus,
    DoubleOptIn,
    EventKind,
    FieldKind,
    FormField,
    OptinStatus,
    ProviderAccount,
    SandboxContact,
    SignupForm,
    SpamCount,
    Submission,
    SubmissionEvent,
)
from tests.conftest import make_form, make_submission

KEY = "es-live-key-abcdef0123456789"

pytestmark = pytest.mark.django_db


def account_data(**overrides: str) -> dict[str, str]:
    data = {"name": "Shop", "provider": "esputnik", "api_key": "", "api_base_url": "",
            "api_language": "en", "rate_limit_per_minute": "", "is_active": "on"}
    data.update(overrides)
    return data


def signup_form_data(account: ProviderAccount, fields: list[dict[str, str]], **overrides: str
                     ) -> dict[str, str]:
    """POST data of the signup form add page, with the fields inline's management form."""
    data = {
        "form_type": "spring", "title": "Spring", "description": "", "account": str(account.pk),
        "is_active": "on", "double_opt_in": "provider", "lists": "", "provider_form_type": "",
        "confirmed_group": "Confirmed", "tags": "", "overwrite": "2",
        "submit_label": "Subscribe", "success_message": "Thanks",
        "already_subscribed_message": "Already", "error_message": "Fix it",
        "consent_text": "", "redirect_url": "", "allowed_origins": "",
        "fields-TOTAL_FORMS": str(len(fields)), "fields-INITIAL_FORMS": "0",
        "fields-MIN_NUM_FORMS": "0", "fields-MAX_NUM_FORMS": "1000",
    }
    for i, spec in enumerate(fields):
        row = {"order": str(i), "name": "", "label": "", "kind": "text", "provider_field": "",
               "choices": "", "help_text": "", **spec}
        data.update({f"fields-{i}-{k}": v for k, v in row.items()})
    data.update(overrides)
    return data


# --- provider accounts -----------------------------------------------------------------------


def test_api_key_is_write_only(admin_client):
    response = admin_client.post(reverse("admin:esp_forms_provideraccount_add"),
                                 account_data(api_key=KEY))
    assert response.status_code == 302, response.content
    account = ProviderAccount.objects.get()
    assert account.api_key == KEY

    change_url = reverse("admin:esp_forms_provideraccount_change", args=[account.pk])
    page = admin_client.get(change_url).content.decode()
    assert KEY not in page
    assert account.masked_api_key in page
    assert re.search(r'<input type="password" name="api_key"(?![^>]*value=)', page)

    listing = admin_client.get(reverse("admin:esp_forms_provideraccount_changelist"))
    assert KEY not in listing.content.decode()
    assert account.masked_api_key in listing.content.decode()


def test_blank_key_on_edit_keeps_the_stored_key(admin_client):
    account = ProviderAccount.objects.create(name="Shop", provider="esputnik", api_key=KEY)
    url = reverse("admin:esp_forms_provideraccount_change", args=[account.pk])

    response = admin_client.post(url, account_data(name="Shop renamed"))
    assert response.status_code == 302, response.content
    account.refresh_from_db()
    assert (account.name, account.api_key) == ("Shop renamed", KEY)
    # The history must not claim the key changed when nothing was typed.
    from django.contrib.admin.models import LogEntry

    assert "API key" not in LogEntry.objects.latest("action_time").get_change_message()

    response = admin_client.post(url, account_data(name="Shop renamed", api_key="new-key-42"))
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.api_key == "new-key-42"


def test_new_esputnik_account_needs_a_key(admin_client):
    response = admin_client.post(reverse("admin:esp_forms_provideraccount_add"), account_data())
    assert response.status_code == 200
    assert "This provider needs an API key." in response.content.decode()
    assert not ProviderAccount.objects.exists()


def test_account_page_shows_webhook_url_secret_and_config_error(admin_client):
    account = ProviderAccount.objects.create(
        name="Shop", provider="unisender", api_key=KEY,
        config_error="UniSender answered invalid_api_key: the key was revoked")
    page = admin_client.get(
        reverse("admin:esp_forms_provideraccount_change", args=[account.pk])).content.decode()
    assert f"/webhooks/unisender/{account.pk}/" in page
    # The secret never travels in the URL (access logs); UniSender signs with the API key.
    assert "?secret=" not in page and account.webhook_secret not in page
    assert "the key was revoked" in page
    assert 'class="esp-forms-warning"' in page


def test_esputnik_account_page_shows_the_workflow_body(admin_client):
    account = ProviderAccount.objects.create(name="Shop", provider="esputnik", api_key=KEY)
    page = admin_client.get(
        reverse("admin:esp_forms_provideraccount_change", args=[account.pk])).content.decode()
    assert f"/webhooks/esputnik/{account.pk}/" in page
    assert "Data export" in page and "Unsubscribed and Spam" in page
    assert "?secret=" not in page
    # Basic auth for the activity webhook: the login and the secret as password.
    assert "Authentication password" in page and account.webhook_secret in page
    assert (f'&quot;contactId&quot;: &quot;${{ContactId}}&quot;, &quot;secret&quot;: '
            f'&quot;{account.webhook_secret}&quot;') in page


def test_account_list_columns(admin_client, sandbox_account):
    make_form(sandbox_account, "one")
    make_form(sandbox_account, "two")
    response = admin_client.get(reverse("admin:esp_forms_provideraccount_changelist"))
    row = response.context["cl"].result_list[0]
    assert row.n_forms == 2
    page = response.content.decode()
    for header in ("Name", "Provider", "Active", "Rate limit per minute", "Forms"):
        assert header.lower() in page.lower()


# --- signup forms ----------------------------------------------------------------------------


def test_form_list_counts_in_one_query(admin_client, sandbox_account):
    form = make_form(sandbox_account, "counted", double_opt_in=DoubleOptIn.PROVIDER)
    for status in ("pending", "pending", "delivered", "failed"):
        make_submission(form, f"{status}{Submission.objects.count()}@example.com",
                        delivery_status=status, optin_status=OptinStatus.NOT_REQUIRED)
    for optin in ("confirmed", "confirmed", "unconfirmed", "expired", "unsubscribed"):
        make_submission(form, f"{optin}{Submission.objects.count()}@example.com",
                        delivery_status=DeliveryStatus.DELIVERED, optin_status=optin)
    make_form(sandbox_account, "empty")

    url = reverse("admin:esp_forms_signupform_changelist")
    response = admin_client.get(url)
    rows = {f.form_type: f for f in response.context["cl"].result_list}
    counted = rows["counted"]
    assert (counted.n_pending, counted.n_delivered, counted.n_failed) == (2, 6, 1)
    assert (counted.n_unconfirmed, counted.n_confirmed, counted.n_expired) == (1, 2, 1)
    assert counted.confirmation_rate == pytest.approx(2 / 4)  # unsubscribed is not asked
    assert rows["empty"].confirmation_rate is None
    page = response.content.decode()
    assert "50%" in page

    # Ten more forms with submissions cost no extra query: the counts are annotations.
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for i in range(10):
        make_submission(make_form(sandbox_account, f"more-{i}"), f"m{i}@example.com")
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)
    assert len(many) == len(few)


def test_annotated_counts_do_not_multiply_with_fields(sandbox_account):
    form = make_form(sandbox_account, "wide", fields=[
        {"name": "first_name", "kind": FieldKind.FIRST_NAME},
        {"name": "phone", "kind": FieldKind.PHONE}])
    make_submission(form, "a@example.com", delivery_status=DeliveryStatus.FAILED)
    row = annotate_counts(SignupForm.objects.filter(pk=form.pk)).get()
    assert (row.n_failed, row.n_unconfirmed) == (1, 1)


def test_change_page_has_provider_options_embed_and_preview(admin_client, newsletter):
    page = admin_client.get(
        reverse("admin:esp_forms_signupform_change", args=[newsletter.pk])).content.decode()
    assert "eSputnik options" in page and "UniSender options" in page
    assert "Overwrite mode 1 replaces the whole contact" in page
    assert "{% load esp_forms %}{% esp_form &quot;newsletter&quot; %}" in page
    assert "/api/esp-forms/forms/newsletter/" in page
    assert "/api/esp-forms/forms/newsletter/submissions/" in page
    preview_url = reverse("admin:esp_forms_signupform_preview", args=[newsletter.pk])
    assert f'src="{preview_url}"' in page
    # The fields inline, ordered by "order", with the drag-to-reorder hook.
    assert "esp-forms-sortable" in page
    assert page.index('value="email"') < page.index('value="first_name"')


def test_preview_renders_the_form_and_may_be_framed(admin_client, newsletter):
    response = admin_client.get(
        reverse("admin:esp_forms_signupform_preview", args=[newsletter.pk]))
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert 'data-esp-form="newsletter"' in response.content.decode()


def test_preview_shows_an_inactive_form_too(admin_client, newsletter):
    newsletter.is_active = False
    newsletter.save()
    page = admin_client.get(
        reverse("admin:esp_forms_signupform_change", args=[newsletter.pk])).content.decode()
    assert "This form is inactive" in page
    response = admin_client.get(
        reverse("admin:esp_forms_signupform_preview", args=[newsletter.pk]))
    assert 'data-esp-form="newsletter"' in response.content.decode()


def test_preview_needs_staff(client, newsletter):
    response = client.get(reverse("admin:esp_forms_signupform_preview", args=[newsletter.pk]))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_adding_a_form_without_email_field_creates_one(admin_client, sandbox_account):
    response = admin_client.post(reverse("admin:esp_forms_signupform_add"), signup_form_data(
        sandbox_account, [{"name": "first_name", "label": "First name", "kind": "first_name"}]))
    assert response.status_code == 302, response.context["adminform"].errors
    form = SignupForm.objects.get(form_type="spring")
    kinds = dict(form.fields.values_list("name", "kind"))
    assert kinds == {"email": FieldKind.EMAIL, "first_name": FieldKind.FIRST_NAME}
    assert form.fields.get(kind=FieldKind.EMAIL).required


def test_adding_a_form_with_its_own_email_field_keeps_it(admin_client, sandbox_account):
    response = admin_client.post(reverse("admin:esp_forms_signupform_add"), signup_form_data(
        sandbox_account, [{"name": "mail", "label": "Your email", "kind": "email",
                           "required": "on"}]))
    assert response.status_code == 302
    assert list(FormField.objects.values_list("name", flat=True)) == ["mail"]


def test_two_email_fields_are_refused(admin_client, sandbox_account):
    response = admin_client.post(reverse("admin:esp_forms_signupform_add"), signup_form_data(
        sandbox_account, [{"name": "a", "label": "A", "kind": "email"},
                          {"name": "b", "label": "B", "kind": "email"}]))
    assert response.status_code == 200
    assert "A form has exactly one field of kind Email." in response.content.decode()
    assert not SignupForm.objects.exists()


def test_provider_rules_come_from_model_clean(admin_client, sandbox_account):
    response = admin_client.post(reverse("admin:esp_forms_signupform_add"), signup_form_data(
        sandbox_account, [], tags="vip"))
    assert response.status_code == 200
    assert "Tags are a UniSender option." in response.content.decode()


def test_an_esputnik_provider_mode_form_needs_a_confirmed_segment(admin_client):
    account = ProviderAccount.objects.create(name="ES", provider="esputnik", api_key=KEY)
    response = admin_client.post(reverse("admin:esp_forms_signupform_add"), signup_form_data(
        account, [], double_opt_in="provider", confirmed_group=""))
    assert response.status_code == 200
    assert "eSputnik has no API field that says a contact confirmed" in \
        response.content.decode()
    assert not SignupForm.objects.exists()


def test_overwrite_one_on_unisender_warns_after_save(admin_client):
    account = ProviderAccount.objects.create(name="Uni", provider="unisender", api_key=KEY)
    response = admin_client.post(reverse("admin:esp_forms_signupform_add"), signup_form_data(
        account, [], lists="555", overwrite="1"), follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert any("overwrite mode 1" in m for m in messages), messages


# --- submissions -----------------------------------------------------------------------------


@pytest.fixture
def submission(newsletter) -> Submission:
    sub = make_submission(newsletter, "taras@example.com", delivery_status=DeliveryStatus.FAILED,
                          last_error="UniSender refused: invalid email", attempts=3)
    SubmissionEvent.objects.create(submission=sub, kind=EventKind.FAILED,
                                   message="Provider refused the contact",
                                   data={"status": 400, "body": {"error": "invalid"}})
    return sub


def test_submission_list_filters_and_search(admin_client, submission, newsletter):
    make_submission(newsletter, "other@example.com")
    url = reverse("admin:esp_forms_submission_changelist")
    response = admin_client.get(url, {"q": "taras@"})
    assert [s.email for s in response.context["cl"].result_list] == ["taras@example.com"]
    response = admin_client.get(url, {"delivery_status__exact": "pending"})
    assert [s.email for s in response.context["cl"].result_list] == ["other@example.com"]
    response = admin_client.get(url, {"optin_status__exact": "unconfirmed",
                                      "form__id__exact": newsletter.pk})
    assert len(response.context["cl"].result_list) == 2
    page = response.content.decode()
    for column in ("Email", "Form", "Delivery status", "Opt-in status", "Attempts", "Created at"):
        assert column.lower() in page.lower()


def test_submission_detail_is_read_only_with_the_event_log(admin_client, submission):
    url = reverse("admin:esp_forms_submission_change", args=[submission.pk])
    response = admin_client.get(url)
    page = response.content.decode()
    assert response.status_code == 200
    assert "taras@example.com" in page
    assert 'name="email"' not in page and 'name="_save"' not in page
    assert "Provider refused the contact" in page
    assert "&quot;status&quot;: 400" in page  # pretty-printed JSON of the event data
    # A POST cannot change personal data either.
    admin_client.post(url, {"email": "evil@example.com"})
    submission.refresh_from_db()
    assert submission.email == "taras@example.com"


def test_submissions_cannot_be_added(admin_client, newsletter):
    assert admin_client.get(reverse("admin:esp_forms_submission_add")).status_code == 403


def test_retry_action(admin_client, submission, newsletter):
    pending = make_submission(newsletter, "fine@example.com")
    response = admin_client.post(reverse("admin:esp_forms_submission_changelist"), {
        "action": "retry_failed", "_selected_action": [submission.pk, pending.pk]}, follow=True)
    submission.refresh_from_db()
    assert submission.delivery_status == DeliveryStatus.PENDING
    assert "1 submission queued for another delivery attempt." in [
        str(m) for m in response.context["messages"]]


def test_resend_confirmation_action(admin_client, sandbox_account):
    form = make_form(sandbox_account, "local", double_opt_in=DoubleOptIn.LOCAL)
    sub = make_submission(form, "local@example.com")
    response = admin_client.post(reverse("admin:esp_forms_submission_changelist"), {
        "action": "resend_confirmation", "_selected_action": [sub.pk]}, follow=True)
    assert [m.to for m in mail.outbox] == [["local@example.com"]]
    assert "1 confirmation email queued." in [str(m) for m in response.context["messages"]]


def test_refresh_action_reads_the_provider(admin_client, newsletter):
    sub = make_submission(newsletter, "asked@example.com",
                          delivery_status=DeliveryStatus.DELIVERED)
    SandboxContact.objects.create(account=newsletter.account, email=sub.email,
                                  status=SandboxContact.Status.ACTIVE)
    response = admin_client.post(reverse("admin:esp_forms_submission_changelist"), {
        "action": "refresh_optin", "_selected_action": [sub.pk]}, follow=True)
    assert "1 submission checked with the provider." in [
        str(m) for m in response.context["messages"]]
    sub.refresh_from_db()
    assert sub.optin_status == OptinStatus.CONFIRMED


# --- read-only lists -------------------------------------------------------------------------


def test_spam_counts_and_sandbox_contacts_are_read_only(admin_client, newsletter):
    SpamCount.objects.create(form=newsletter, reason=SpamCount.Reason.HONEYPOT, count=3)
    contact = SandboxContact.objects.create(account=newsletter.account, email="s@example.com",
                                            lists=["news"])
    for model in ("spamcount", "sandboxcontact"):
        listing = admin_client.get(reverse(f"admin:esp_forms_{model}_changelist"))
        assert listing.status_code == 200
        assert admin_client.get(reverse(f"admin:esp_forms_{model}_add")).status_code == 403
    page = admin_client.get(
        reverse("admin:esp_forms_sandboxcontact_change", args=[contact.pk])).content.decode()
    assert contact.token not in page
    assert 'name="_save"' not in page


def test_form_page_shows_what_was_dropped_as_spam(admin_client, newsletter):
    from datetime import timedelta

    from django.utils import timezone

    today = timezone.localdate()
    SpamCount.objects.create(form=newsletter, reason="too_fast", count=4)
    SpamCount.objects.create(form=newsletter, reason="too_fast", count=1,
                             day=today - timedelta(days=6))
    SpamCount.objects.create(form=newsletter, reason="honeypot", count=2)
    SpamCount.objects.create(form=newsletter, reason="bad_token", count=9,
                             day=today - timedelta(days=7))  # older than the summary
    url = reverse("admin:esp_forms_signupform_change", args=[newsletter.pk])
    page = admin_client.get(url).content.decode()
    assert "In the last 7 days: Submitted too fast: 5, Honeypot field filled: 2." in page
    listing = reverse("admin:esp_forms_spamcount_changelist") + f"?form__id__exact={newsletter.pk}"
    assert f'href="{listing}"' in page
    assert admin_client.get(listing).status_code == 200
    SpamCount.objects.all().delete()
    assert "Nothing in the last 7 days." in admin_client.get(url).content.decode()


def test_provider_note_says_what_happens_to_other_providers_options(admin_client, newsletter):
    add_page = admin_client.get(reverse("admin:esp_forms_signupform_add")).content.decode()
    assert "ignored (and refused" not in add_page
    assert ("Leave the other provider&#x27;s options at their defaults: saving refuses UniSender "
            "tags or overwrite mode, or an eSputnik formType, on a form of another provider."
            ) in add_page
    page = admin_client.get(
        reverse("admin:esp_forms_signupform_change", args=[newsletter.pk])).content.decode()
    assert "the offline sandbox: it uses none of the eSputnik and UniSender options" in page


def test_forms_can_still_be_deleted_from_the_annotated_list(admin_client, sandbox_account):
    form = make_form(sandbox_account, "gone")
    response = admin_client.post(reverse("admin:esp_forms_signupform_changelist"), {
        "action": "delete_selected", "_selected_action": [form.pk], "post": "yes"})
    assert response.status_code == 302
    assert not SignupForm.objects.filter(pk=form.pk).exists()
    response = admin_client.post(
        reverse("admin:esp_forms_signupform_delete", args=[make_form(sandbox_account).pk]),
        {"post": "yes"})
    assert response.status_code == 302
    assert not SignupForm.objects.exists()


def test_change_page_offers_the_one_tag_embed(admin_client, newsletter, settings):
    settings.ESP_FORMS = {**settings.ESP_FORMS, "SITE_URL": "https://news.example.com"}
    page = admin_client.get(
        reverse("admin:esp_forms_signupform_change", args=[newsletter.pk])).content.decode()
    assert ("&lt;script src=&quot;https://news.example.com/static/esp_forms/embed.js&quot; "
            "data-form=&quot;newsletter&quot; async&gt;&lt;/script&gt;") in page
