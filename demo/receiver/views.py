"""A page that receives webhooks and lists what it received."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from http_hooks.models import Hook

from .models import ReceivedRequest


def _signature_state(request: HttpRequest, body: str) -> str:
    if "webhook-signature" not in request.headers:
        return "unsigned"
    from http_hooks.signing import verify

    headers = {k.lower(): v for k, v in request.headers.items()}
    for secret in Hook.objects.exclude(secret="").values_list("secret", flat=True):
        if verify(secret, headers, body.encode()):
            return "valid"
    return "invalid"


@csrf_exempt
def inbox(request: HttpRequest, name: str) -> HttpResponse:
    body = request.body.decode("utf-8", errors="replace")
    ReceivedRequest.objects.create(
        inbox=name,
        method=request.method,
        headers=dict(request.headers),
        body=body,
        signature=_signature_state(request, body),
    )
    return HttpResponse(status=204)


def received(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "receiver/received.html",
        {"received": ReceivedRequest.objects.all()[:50], "count": ReceivedRequest.objects.count()},
    )
