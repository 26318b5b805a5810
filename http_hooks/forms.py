"""Admin forms: the same validation as the Python and REST APIs, shown as form errors."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.contenttypes.models import ContentType
from django.forms.fields import InvalidJSONInput

from .api.filters import StrictIntegerFormField
from .api.parsers import MAX_DEPTH
from .api.serializers import TEXT_AFTER_TIME, text_after_time
from .exceptions import HttpHooksError
from .headers import MASKED, format_headers, mask_headers
from .models import Hook, Signal
from .owners import owner_key
from .payloads import TOO_DEEP, StrictJSONDecoder, load_within
from .services import check_since, hold_owner
from .settings import hooks_settings
from .text import LABEL_RULE, text_items
from .validators import (
    APP_LABEL,
    HOOK_FIELDS,
    LABEL_FIELDS,
    MAX_URL_LENGTH,
    import_signal,
    is_row_id,
    validate_hook,
)


class JSONTextField(forms.JSONField):
    """Django's JSON field; a lone surrogate (``"\\ud800"`` in the JSON typed) is shown
    escaped again, as no UTF-8 page can carry it (the form would fail to render).
    JSON nested deeper than the REST API takes, or a number of more digits than
    Python reads, is a form error (Django's field let their exceptions through: a 500),
    as is what the REST API's parser refuses (``payloads.StrictJSONDecoder``: a key
    twice, of which Django's field kept the last value, NaN, a number beyond a double)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("decoder", StrictJSONDecoder)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        try:
            data = load_within(lambda: super(JSONTextField, self).to_python(value), MAX_DEPTH)
        except ValueError as exc:
            raise forms.ValidationError(f"Enter valid JSON: {exc}", code="invalid") from None
        if data is TOO_DEEP:
            raise forms.ValidationError(
                f"Enter JSON nested at most {MAX_DEPTH} levels deep.", code="invalid"
            )
        return data

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except (RecursionError, ValueError):
            return InvalidJSONInput(data)

    def prepare_value(self, value: Any) -> str:
        return super().prepare_value(value).encode("utf-8", "backslashreplace").decode()


class LabelFormField(forms.CharField):
    """A label of the hook (``validators.LABEL_FIELDS``) as typed, as the REST API takes
    it: the service layer refuses a control character anywhere in it, then trims the
    spaces around it. Django's field trimmed first, and so took a tab or a line break
    around a name that the REST API refuses."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "strip": False})


class OwnerFormField(forms.CharField):
    """``Hook.owner``: changed only when it names another owner than the one stored.
    Django compares the text typed: ``01`` for the owner ``1`` (or a UUID in capitals)
    would count as a change of hands, and give the hook a new secret for nothing
    (``admin.HookAdmin.save_model``)."""

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return owner_key(self.to_python(data), must_exist=False) != (initial or "")
        except HttpHooksError:
            return True


class SignalsFormField(forms.ModelMultipleChoiceField):
    """``Hook.signals``: a value that is no row's id is an invalid choice. Django's field
    looked each one up (``pk__in``): a number past 64 bits was a 500 on SQLite."""

    def _check_values(self, value: Any) -> Any:
        for pk in value:
            if not is_row_id(str(pk)):
                raise forms.ValidationError(
                    self.error_messages["invalid_pk_value"],
                    code="invalid_pk_value",
                    params={"pk": str(pk)[:30]},
                )
        return super()._check_values(value)


class HookAdminForm(forms.ModelForm):
    model = forms.ModelChoiceField(
        queryset=ContentType.objects.exclude(app_label=APP_LABEL).order_by("app_label", "model"),
        required=False,
        help_text="The model whose signals fire this hook; empty for a hook that takes "
        "explicit events only.",
    )
    event_types = forms.CharField(
        required=False,
        help_text=(
            "Types of the explicit events (send_event) the hook takes, separated by commas: "
            "names like order.paid, order.* for every type under order, or * for every "
            "event. A hook has a model and signals, event types, or both."
        ),
    )
    # Checked by validate_hook like in the other entry points, with the same messages.
    target_url = forms.CharField(max_length=MAX_URL_LENGTH, widget=forms.URLInput)
    headers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=(
            f"One 'Key: value' per line, or a JSON object. Credentials show as {MASKED}: "
            "leave that (or leave the line out) to keep the value, write a new value to "
            "replace it, or 'Name:' with nothing after the colon to remove it."
        ),
    )
    secret_headers = forms.CharField(
        required=False,
        help_text=(
            "Names of further headers whose values are credentials, separated by commas "
            "(Authorization, Cookie and names containing token, key, secret, auth, sig, "
            "password, credential or session are always secret)."
        ),
    )
    # Checked by validate_hook: a ModelForm's own minimum would answer 0 and -1 apart.
    rate_limit = StrictIntegerFormField(
        label="Rate limit",
        required=False,
        help_text=Hook._meta.get_field("rate_limit").help_text,
    )
    changed_fields = forms.CharField(
        required=False,
        help_text=(
            "Names of fields of the model, separated by commas: an update fires the hook "
            "only if one of them changed since the instance was loaded or last saved (a "
            "create always fires). Empty: every save fires."
        ),
    )
    conditions = JSONTextField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=(
            'A JSON object of lookups the instance must match, e.g. {"paid": true, '
            '"total__gte": 100, "customer__name__icontains": "acme"}; lookups: exact, '
            "iexact, in, gt, gte, lt, lte, isnull, contains, icontains, startswith, "
            'endswith; {"not": {...}} and {"any": [{...}, ...]}. Empty: no condition.'
        ),
    )

    sign = forms.BooleanField(
        label="Sign requests",
        required=False,
        initial=True,
        help_text="Give the new hook a signing secret (Standard Webhooks); it is shown once, "
        "after saving. Later, the 'Rotate signing secret' action makes a new one.",
    )

    class Meta:
        model = Hook
        fields = [*HOOK_FIELDS, "enabled", "owner"]
        field_classes = {
            "owner": OwnerFormField,
            "signals": SignalsFormField,
            **dict.fromkeys(LABEL_FIELDS, LabelFormField),
        }
        help_texts = {
            "name": f"A name for people: {LABEL_RULE}.",
            "owner": "The primary key of the tenant (an instance of OWNER_MODEL, the user "
            "model by default) who sees and manages this hook in the REST API; empty: the "
            "project's own hook, seen by staff only. Its callbacks follow it.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields.pop("sign", None)  # a new hook's choice; rotate-secret after that
            # "Changed" means changed by the user since the page was shown, not against
            # the row now: http_hooks may have disabled the hook meanwhile.
            if "enabled" in self.fields:  # not for a user who may only view
                self.fields["enabled"].show_hidden_initial = True
        if self.instance.pk and isinstance(self.instance.headers, dict):
            self.initial["headers"] = format_headers(
                mask_headers(self.instance.headers, self.instance.secret_headers)
            )
        if self.instance.pk:
            self.initial["secret_headers"] = ", ".join(text_items(self.instance.secret_headers))
        self.initial["changed_fields"] = ", ".join(text_items(self.instance.changed_fields))
        self.initial["event_types"] = ", ".join(text_items(self.instance.event_types))
        self.initial.setdefault("conditions", self.instance.conditions)  # {} for a new hook
        if "model" in self.fields:
            self.fields["model"].label_from_instance = lambda ct: f"{ct.app_label}.{ct.model}"

    def clean_owner(self) -> str:
        """The owner's key; a new owner's row is held until the admin's transaction
        ends (``services.hold_owner``), so that it is not deleted meanwhile."""
        try:
            key = owner_key(self.cleaned_data["owner"].strip())
            if key != self.instance.owner:
                hold_owner(key)
        except HttpHooksError as exc:
            raise exc.as_django_error() from exc
        return key

    def clean_changed_fields(self) -> list[str]:
        return _comma_list(self.cleaned_data["changed_fields"])

    def clean_event_types(self) -> list[str]:
        return _comma_list(self.cleaned_data["event_types"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            fields = {field: cleaned.get(field) for field in HOOK_FIELDS}
            fields["signals"] = [s.signal for s in cleaned.get("signals", [])]
            valid = validate_hook(
                fields,
                current=self.instance if self.instance.pk else None,
                owner=cleaned.get("owner"),
            )
        except HttpHooksError as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, exc.as_django_error())
            return cleaned
        # The form keeps its Signal rows; every other field takes its cleaned value.
        cleaned.update((field, value) for field, value in valid.items() if field != "signals")
        return cleaned


def _comma_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


class SignalAdminForm(forms.ModelForm):
    class Meta:
        model = Signal
        fields = ["signal"]

    def clean_signal(self) -> str:
        path = self.cleaned_data["signal"].strip()
        try:
            import_signal(path)
        except HttpHooksError as exc:
            raise exc.as_django_error() from exc
        return path


class DateTimeFormField(forms.DateTimeField):
    """Django's date-time field, refusing text after the time (``text_after_time``),
    which its ISO parser read as that time. The formats of the locale are kept."""

    def to_python(self, value: Any) -> Any:
        if text_after_time(value):
            raise forms.ValidationError(TEXT_AFTER_TIME, code="invalid")
        return super().to_python(value)


class RecoverForm(forms.Form):
    """The question of the admin's "Recover failed callbacks…" action."""

    since = DateTimeFormField(
        help_text="The hook's failed callbacks created at or after this time (in the "
        "server's time zone) are queued again.",
    )
    confirm = forms.BooleanField(required=False, label="Confirm a large recover")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read when the form is made: the setting may change while the server runs (tests).
        self.fields["confirm"].help_text = (
            f"Needed when more than {int(hooks_settings.RESEND_LIMIT):,} callbacks match "
            "(RESEND_LIMIT)."
        )

    def clean_since(self) -> Any:
        try:
            return check_since(self.cleaned_data["since"])
        except HttpHooksError as exc:
            raise exc.as_django_error() from exc
