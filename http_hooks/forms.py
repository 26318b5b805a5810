"""Admin forms: the same validation as the Python and REST APIs, shown as form errors."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.contenttypes.models import ContentType

from .exceptions import HttpHooksError
from .headers import MASKED, format_headers, mask_headers
from .models import Hook, Signal
from .validators import APP_LABEL, import_signal, validate_hook


class HookAdminForm(forms.ModelForm):
    model = forms.ModelChoiceField(
        queryset=ContentType.objects.exclude(app_label=APP_LABEL).order_by("app_label", "model"),
        help_text="The model whose signals fire this hook.",
    )
    target_url = forms.URLField(max_length=2000, assume_scheme="https")
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

    class Meta:
        model = Hook
        fields = [
            "name",
            "model",
            "signals",
            "enabled",
            "target_url",
            "http_method",
            "headers",
            "secret_headers",
            "content_type",
            "payload_template",
            "serializer_class",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and isinstance(self.instance.headers, dict):
            self.initial["headers"] = format_headers(
                mask_headers(self.instance.headers, self.instance.secret_headers)
            )
        if self.instance.pk:
            self.initial["secret_headers"] = ", ".join(self.instance.secret_headers)
        if "model" in self.fields:
            self.fields["model"].label_from_instance = lambda ct: f"{ct.app_label}.{ct.model}"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            valid = validate_hook(
                name=cleaned.get("name", ""),
                model=cleaned["model"],
                signals=[s.signal for s in cleaned.get("signals", [])],
                target_url=cleaned.get("target_url", ""),
                http_method=cleaned.get("http_method", ""),
                headers=cleaned.get("headers", ""),
                secret_headers=cleaned.get("secret_headers", ""),
                current=self.instance if self.instance.pk else None,
                content_type=cleaned.get("content_type", ""),
                payload_template=cleaned.get("payload_template", ""),
                serializer_class=cleaned.get("serializer_class", ""),
            )
        except HttpHooksError as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, exc.as_django_error())
            return cleaned
        cleaned["headers"] = valid["headers"]
        cleaned["secret_headers"] = valid["secret_headers"]
        cleaned["http_method"] = valid["http_method"]
        cleaned["serializer_class"] = valid["serializer_class"]
        return cleaned


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
