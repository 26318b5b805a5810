"""The REST API's ViewSets: thin entry points over ``services`` and ``selectors``.

Each view parses its input with a serializer, calls one service function and
formats the result. Errors of the service layer become 400s in
``errors.exception_handler``; permissions come from
``HTTP_HOOKS['PERMISSION_CLASSES']``.
"""

from __future__ import annotations

from typing import Any

from django.db import router, transaction
from django.db.models import QuerySet
from django.utils.module_loading import import_string
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from .. import selectors, services
from ..exceptions import HookChangedHandsError, SignalInUseError
from ..models import Callback, Hook, Signal
from ..owners import Owners, owners_for, scope
from ..settings import hooks_settings
from . import schema  # noqa: F401  (registers the schema extensions)
from .errors import Conflict, exception_handler
from .filters import (
    CallbackFilter,
    CallbackOrderingFilter,
    FilterBackend,
    HookFilter,
    OrderingFilter,
    SearchFilter,
    SignalFilter,
)
from .negotiation import KnownFormats
from .pagination import CallbackCursorPagination, HooksPageNumberPagination
from .parsers import ExactJSONParser, JSONParser
from .serializers import (
    NEW_HOOK,
    AttemptSerializer,
    CallbackSerializer,
    DeletedSerializer,
    DeleteOldSerializer,
    ErrorSerializer,
    EventTypeSerializer,
    HealthQuerySerializer,
    HookHealthSerializer,
    HookSerializer,
    HookWithSecretSerializer,
    MonitorQuerySerializer,
    MonitorResultSerializer,
    NoBodySerializer,
    RecoverSerializer,
    ResendManySerializer,
    ResendResultSerializer,
    RotateSecretSerializer,
    SecretSerializer,
    SendEventResultSerializer,
    SendEventSerializer,
    SendRequestSerializer,
    SendResultSerializer,
    SignalSerializer,
)

ERROR_DESCRIPTIONS = {
    400: "Invalid input: `errors` lists each field at fault (empty when the body is not "
    "valid JSON, nests deeper than 32 levels, gives an object a key twice or holds a "
    "number beyond a double's range, or the query string has more parameters than "
    "Django's `DATA_UPLOAD_MAX_NUMBER_FIELDS`).",
    401: "Not authenticated.",
    403: "Not authenticated, or not allowed (staff or the model permission is needed).",
    404: "No such object, or one of an owner the user does not act for (or, for a list, "
    "no such page or cursor).",
    409: "Conflict with the object's current state (for a hook: it changed hands after "
    "the request read it, `hook_changed_hands`; nothing was changed).",
    413: "The body is larger than the server accepts (Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`).",
    415: "The body is not JSON (`Content-Type: application/json`).",
    503: "Try again: the database did not answer (`database_unavailable`), or, for an "
    "action that sends, the HTTP transport failed (`transport_error`; nothing was lost).",
}


NEW_HOOK_EXAMPLE = OpenApiExample(
    "A hook on new and changed users", value=NEW_HOOK, request_only=True
)


def id_parameter(model: str) -> OpenApiParameter:
    """The ``{id}`` of a detail URL, typed: the URL accepts any segment (so that a
    malformed id is a JSON 404), the schema says what a valid one is."""
    return OpenApiParameter(
        "id", OpenApiTypes.INT, OpenApiParameter.PATH, description=f"The id of the {model}."
    )


HOOK_ID = id_parameter("hook")
SIGNAL_ID = id_parameter("signal")
CALLBACK_ID = id_parameter("callback")


def responses(ok: dict[int, Any], *errors: int) -> dict[int, Any]:
    """``ok`` plus the documented error answers: ``errors``, and those of every endpoint
    (400: a query string Django refuses, more than ``DATA_UPLOAD_MAX_NUMBER_FIELDS``
    parameters; 401 and 403; 503: a database out of reach), all with the ``Error``
    body. An operation that takes a body (a 415 when it is not JSON) also answers 413
    when it is too large."""
    too_large = (413,) if 415 in errors else ()
    return ok | {
        code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code])
        for code in sorted({400, *errors, *too_large, 401, 403, 503})
    }


def take_no_body(request: Request) -> None:
    """An action that takes no body refuses one, as the others refuse a bad one: a body
    that is not JSON is a 400 (415 for another content type), and anything but
    nothing or ``{}`` a 400 (garbage was once taken, and the action done)."""
    if request.data not in ({}, None):
        raise ValidationError("this action takes no body (or {})", code="unexpected_body")


class HttpHooksAPIMixin:
    """What every ViewSet of the app shares: JSON bodies, ids in URLs (anything else
    in their place is a JSON 404, not the project's HTML one), permissions from the
    app's settings, the one exception handler, and the owners the request acts for
    (``owners``; None: every owner). A view of hooks or callbacks lists and finds only
    their rows, so another owner's are 404 in every action. Each action that takes a
    body names its serializer (``serializer_class``): the browsable API's raw form and
    ``OPTIONS`` start from it, not from the ViewSet's model."""

    parser_classes = [JSONParser]
    content_negotiation_class = KnownFormats
    # ASCII digits, no leading zero (not \d, which takes any Unicode digit): "+1", " 1",
    # "1_0" or an Arabic-Indic digit would otherwise reach int() and name a hook.
    lookup_value_regex = "[1-9][0-9]*"
    scoped_by_owner = True

    @property
    def owners(self) -> Owners:
        if not hasattr(self, "_owners"):
            self._owners = owners_for(self.request)
        return self._owners

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        return scope(queryset, self.owners) if self.scoped_by_owner else queryset

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "owners": self.owners}

    def get_permissions(self) -> list[BasePermission]:
        return [
            (import_string(cls) if isinstance(cls, str) else cls)()
            for cls in hooks_settings.PERMISSION_CLASSES
        ]

    def get_exception_handler(self):
        return exception_handler


# --- hooks ---------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        operation_id="list_hooks",
        summary="List hooks",
        responses=responses({200: HookSerializer}, 400, 404),
    ),
    create=extend_schema(
        operation_id="create_hook",
        summary="Create a hook",
        description="Validates every field as the Python API does. The answer carries the "
        "signing secret (generated when not given): the only time it is shown.",
        request=HookSerializer,
        responses=responses({201: HookWithSecretSerializer}, 400, 415),
        examples=[NEW_HOOK_EXAMPLE],
    ),
    retrieve=extend_schema(
        operation_id="get_hook",
        parameters=[HOOK_ID],
        summary="Get a hook",
        responses=responses({200: HookSerializer}, 404),
    ),
    update=extend_schema(
        operation_id="update_hook",
        parameters=[HOOK_ID],
        summary="Replace a hook",
        description="The hook becomes what the body says: a field left out takes the value "
        "a new hook would have (`enabled` true, no `conditions`, no `rate_limit`, ...), as "
        "on `POST /hooks/`. Exceptions: the signing `secret` stays unless given (a new one "
        "is a rotation, as `rotate-secret` makes), and so do `owner` and `secret_headers` "
        "(the values of the "
        "headers it marks were never shown, so a client could not give them again). "
        "Headers left out keep their credentials, as a change of `headers` does. To change "
        "some fields only, use `PATCH`.",
        responses=responses({200: HookSerializer}, 400, 404, 409, 415),
        examples=[NEW_HOOK_EXAMPLE],
    ),
    partial_update=extend_schema(
        operation_id="partial_update_hook",
        parameters=[HOOK_ID],
        summary="Change some fields of a hook",
        description="The whole hook is validated again with the changes.",
        responses=responses({200: HookSerializer}, 400, 404, 409, 415),
        examples=[
            OpenApiExample("Disable", value={"enabled": False}, request_only=True),
        ],
    ),
    destroy=extend_schema(
        operation_id="delete_hook",
        parameters=[HOOK_ID],
        summary="Delete a hook and its callbacks",
        responses=responses({204: None}, 404, 409),
    ),
)
class HookViewSet(HttpHooksAPIMixin, viewsets.ModelViewSet):
    """Hooks: "when model M fires signal S, send an HTTP request to URL U"."""

    queryset = Hook.objects.select_related("model").prefetch_related("signals").order_by("id")
    serializer_class = HookSerializer
    pagination_class = HooksPageNumberPagination
    filter_backends = [FilterBackend, SearchFilter, OrderingFilter]
    filterset_class = HookFilter
    search_fields = ["name", "target_url"]
    ordering_fields = ["id", "name", "create_datetime", "update_datetime"]
    action_permissions = {
        "test": "change",
        "rotate_secret": "change",
        "enable": "change",
        "recover": "change",
    }

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The answer is read in the transaction that stores the hook: a database lost
        # before it is read (its signals) is a 503 "try again" that must have created
        # nothing, or the retry would make a second hook, and the first one's secret
        # would never be shown.
        with transaction.atomic(using=router.db_for_write(Hook)):
            hook = serializer.save()
            data = HookWithSecretSerializer(hook, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)

    def handle_exception(self, exc: Exception) -> Response:
        """A write to a hook that was deleted or changed hands after the request read it
        (``HookChangedHandsError``, from any action): a 404 to a request that can no
        longer see it, as for any hook not its own; a 409 to one that still can."""
        if isinstance(exc, HookChangedHandsError):
            if self.get_queryset().filter(pk=self.kwargs.get("pk")).exists():
                exc = Conflict(exc.message, code=exc.code)
            else:
                exc = NotFound()
        return super().handle_exception(exc)

    def perform_destroy(self, instance: Hook) -> None:
        services.delete_hook(instance)

    @extend_schema(
        operation_id="test_hook",
        parameters=[HOOK_ID],
        summary="Send a test event now",
        description="Sends a synthetic `http_hooks.test` event to the hook's target, once, "
        "signed like any other request, and returns the attempt (the receiver's answer "
        "or the error).",
        request=None,
        responses=responses({200: AttemptSerializer}, 404, 409, 415, 503),
    )
    @action(detail=True, methods=["post"], serializer_class=NoBodySerializer)
    def test(self, request: Request, pk: str | None = None) -> Response:
        take_no_body(request)
        hook = self.get_object()
        attempt = services.send_test_event(hook)
        return Response(
            AttemptSerializer(attempt, context={"secret_headers": hook.secret_headers}).data
        )

    @extend_schema(
        operation_id="enable_hook",
        parameters=[HOOK_ID],
        summary="Enable a hook and clear its health state",
        description="Enables the hook and clears what endpoint health set: `disabled_reason`, "
        "`disabled_at`, the circuit breaker (`consecutive_failures`) and any pause "
        "(`paused_until`). Callbacks it kept waiting go out at the next send. Returns the hook.",
        request=None,
        responses=responses({200: HookSerializer}, 404, 409, 415),
    )
    @action(detail=True, methods=["post"], serializer_class=NoBodySerializer)
    def enable(self, request: Request, pk: str | None = None) -> Response:
        take_no_body(request)
        hook = services.enable_hook(self.get_object())
        return Response(HookSerializer(hook, context=self.get_serializer_context()).data)

    @extend_schema(
        operation_id="recover_hook",
        parameters=[HOOK_ID],
        summary="Queue again the hook's failed callbacks since a time",
        description="Svix's recover, after a receiver's outage: queues again, as "
        "`POST /callbacks/resend/` does, the hook's callbacks in status `error` created at "
        "or after `since`; `confirm` is required when more than `RESEND_LIMIT` match. Does "
        "not enable the hook: a hook disabled by http_hooks keeps them waiting until it is "
        "enabled (`POST /hooks/{id}/enable/`), a paused one until its pause ends.",
        request=RecoverSerializer,
        responses=responses({200: ResendResultSerializer}, 400, 404, 409, 415),
    )
    @action(detail=True, methods=["post"], serializer_class=RecoverSerializer)
    def recover(self, request: Request, pk: str | None = None) -> Response:
        hook = self.get_object()
        serializer = RecoverSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        count = services.recover_hook(hook, **serializer.validated_data)
        return Response(ResendResultSerializer({"count": count}).data)

    @extend_schema(
        operation_id="get_hook_health",
        parameters=[HOOK_ID, HealthQuerySerializer],
        summary="A hook's delivery health",
        description="Over a window of the last hours (the current one included): tries that "
        "succeeded and failed, the success rate, the median and 95th percentile of a try's "
        "duration and the tries per hour; and the hook's state: last success, last failure "
        "and its error, the circuit breaker, any pause and why, any disable by http_hooks. "
        "Read from hourly counts kept as the sender records outcomes, not from the callbacks.",
        responses=responses({200: HookHealthSerializer}, 400, 404),
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def health(self, request: Request, pk: str | None = None) -> Response:
        hook = self.get_object()
        query = HealthQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        [health] = selectors.hooks_health(hours=query.validated_data["hours"], hooks=[hook])
        return Response(HookHealthSerializer(health).data)

    @extend_schema(
        operation_id="rotate_hook_secret",
        parameters=[HOOK_ID],
        summary="Rotate the signing secret",
        description="Gives the hook a new secret (the one given, or a random one). The old "
        "secret keeps signing too during the grace period (`SECRET_ROTATION_GRACE`).",
        request=RotateSecretSerializer,
        responses=responses({200: SecretSerializer}, 400, 404, 409, 415),
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="rotate-secret",
        serializer_class=RotateSecretSerializer,
    )
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        hook = self.get_object()
        serializer = RotateSecretSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        secret = services.rotate_secret(hook, secret=serializer.validated_data.get("secret"))
        return Response(
            SecretSerializer(
                {"secret": secret, "previous_secret_expires_at": hook.previous_secret_expires_at}
            ).data
        )


# --- signals -------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        operation_id="list_signals",
        summary="List signals",
        responses=responses({200: SignalSerializer}, 400, 404),
    ),
    create=extend_schema(
        operation_id="create_signal",
        summary="Register a signal",
        description="The path must import to a `django.dispatch.Signal` instance.",
        responses=responses({201: SignalSerializer}, 400, 415),
    ),
    retrieve=extend_schema(
        operation_id="get_signal",
        parameters=[SIGNAL_ID],
        summary="Get a signal",
        responses=responses({200: SignalSerializer}, 404),
    ),
    destroy=extend_schema(
        operation_id="delete_signal",
        parameters=[SIGNAL_ID],
        summary="Delete a signal",
        description="Only a signal no hook listens to can be deleted (409 `signal_in_use` "
        "otherwise).",
        responses=responses({204: None}, 404, 409),
    ),
)
class SignalViewSet(
    HttpHooksAPIMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Signals that hooks can listen to, by dotted path."""

    queryset = Signal.objects.order_by("signal")
    scoped_by_owner = False
    serializer_class = SignalSerializer
    pagination_class = HooksPageNumberPagination
    filter_backends = [FilterBackend, SearchFilter, OrderingFilter]
    filterset_class = SignalFilter
    search_fields = ["signal"]
    ordering_fields = ["id", "signal", "create_datetime"]

    def perform_destroy(self, instance: Signal) -> None:
        try:
            services.delete_signal(signal=instance, owners=self.owners)
        except SignalInUseError as error:
            raise Conflict(error.message, code=error.code) from None


# --- callbacks -----------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        operation_id="list_callbacks",
        summary="List callbacks",
        description="Newest first, paged by cursor: follow `next`. Newest by id, or by "
        "creation time (`-create_datetime`) when `created_after`, `created_before` or "
        "`updated_before` (a callback is updated no earlier than it was created) is given "
        "without `ordering`. No count of the matches: at millions of callbacks it "
        "would cost more than the page.",
        responses=responses({200: CallbackSerializer}, 400, 404),
    ),
    retrieve=extend_schema(
        operation_id="get_callback",
        parameters=[CALLBACK_ID],
        summary="Get a callback",
        responses=responses({200: CallbackSerializer}, 404),
    ),
    destroy=extend_schema(
        operation_id="delete_callback",
        parameters=[CALLBACK_ID],
        summary="Delete a callback",
        description="Not while a sender holds it (409): its outcome would be lost, and the "
        "next callback of its ordering key would go while it is still in flight.",
        responses=responses({204: None}, 404, 409),
    ),
)
class CallbackViewSet(
    HttpHooksAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Callbacks: the stored HTTP requests of events, and their delivery."""

    queryset = Callback.objects.all()
    serializer_class = CallbackSerializer
    pagination_class = CallbackCursorPagination
    filter_backends = [FilterBackend, CallbackOrderingFilter]
    filterset_class = CallbackFilter
    ordering_fields = ["id", "create_datetime"]
    ordering = ["-id"]
    action_permissions = {
        "resend": "change",
        "resend_many": "change",
        "send": "change",
        "monitor": "view",
        "attempts": "view",
        "delete_old": "delete",
    }

    def perform_destroy(self, instance: Callback) -> None:
        if not services.delete_callback(instance):
            raise Conflict(
                "the callback is being sent right now; try again later", code="callback_sending"
            )

    @extend_schema(
        operation_id="resend_callback",
        parameters=[CALLBACK_ID],
        summary="Resend a callback",
        description="Queues the callback again, due now, with a fresh retry budget and the "
        "same event id; its attempts are numbered on from the last one. The sender "
        "(`send_callbacks`, the worker or `POST /callbacks/send/`) delivers it.",
        request=None,
        responses=responses({200: CallbackSerializer}, 404, 409, 415),
    )
    @action(detail=True, methods=["post"], serializer_class=NoBodySerializer)
    def resend(self, request: Request, pk: str | None = None) -> Response:
        take_no_body(request)
        callback = self.get_object()
        if not services.resend_callbacks(ids=[callback.pk], owners=self.owners):
            raise Conflict(
                "the callback is being sent right now, or its hook has moved to another "
                "owner since",
                code="callback_sending",
            )
        callback.refresh_from_db()
        return Response(CallbackSerializer(callback, context=self.get_serializer_context()).data)

    @extend_schema(
        operation_id="resend_callbacks",
        summary="Resend many callbacks",
        description="Queues again every callback that matches the query's filters and, when "
        "given, is among `ids`. At least one filter or `ids` is required, and `confirm` "
        "when more than `RESEND_LIMIT` callbacks match. The callbacks are queued "
        "`BATCH_SIZE` at a time (a chunk that was queued stays queued if a later one fails). "
        "Callbacks of owners the user does not act for are passed over, as ids that do not "
        "exist are.",
        request=ResendManySerializer,
        responses=responses({200: ResendResultSerializer}, 400, 415),
        filters=True,
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="resend",
        url_name="resend-many",
        filter_backends=[FilterBackend],
        serializer_class=ResendManySerializer,
    )
    def resend_many(self, request: Request) -> Response:
        serializer = ResendManySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = serializer.validated_data.get("ids")
        chosen = [name for name in CallbackFilter.base_filters if name in request.query_params]
        if ids is None and not chosen:
            raise ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: ["give ids or at least one filter"]},
                code="no_selection",
            )
        callbacks = self.filter_queryset(self.get_queryset())
        count = services.resend_callbacks(
            ids=ids,
            queryset=callbacks,
            confirm=serializer.validated_data["confirm"],
            owners=self.owners,
        )
        return Response(ResendResultSerializer({"count": count}).data)

    @extend_schema(
        operation_id="send_callbacks",
        summary="Send due callbacks now, one batch",
        description="What `manage.py send_callbacks` does, bounded to one web request: sends "
        "the waiting callbacks that are due (all, of one hook, or the listed ones, due or "
        "not), at most `limit` and never more than `BATCH_SIZE`, starting no new try once one "
        "try's time (`TIMEOUT`: connect and read) has passed, and returns the summary; "
        "`more` says whether to call again. With `DISPATCH` `celery` or `tasks` the work is "
        "handed to the workers instead (`mode` says which). A user limited to their owners "
        "sends only their callbacks: another owner's ids are passed over, another owner's "
        "`hook_id` does not exist.",
        request=SendRequestSerializer,
        responses=responses({200: SendResultSerializer}, 400, 415, 503),
    )
    @action(detail=False, methods=["post"], serializer_class=SendRequestSerializer)
    def send(self, request: Request) -> Response:
        serializer = SendRequestSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        hook = serializer.validated_data.get("hook_id")
        result = services.send_batch_or_queue(
            hook_id=hook.pk if hook else None,
            ids=serializer.validated_data.get("ids"),
            limit=serializer.validated_data.get("limit"),
            owners=self.owners,
        )
        return Response(SendResultSerializer(result).data)

    @extend_schema(
        operation_id="monitor_callbacks",
        summary="Count callbacks by status",
        description="What `manage.py monitor_callbacks` does: counts callbacks with `status` "
        "updated in the last `minutes_ago` minutes; `exceeded` is true when the count "
        "reaches `callbacks_limit` (where the command exits 1). Only the callbacks of the "
        "user's owners are counted, unless the user sees every owner.",
        parameters=[MonitorQuerySerializer],
        responses=responses({200: MonitorResultSerializer}, 400),
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def monitor(self, request: Request) -> Response:
        query = MonitorQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        result = services.monitor_callbacks(**query.validated_data, owners=self.owners)
        return Response(MonitorResultSerializer(result).data)

    @extend_schema(
        operation_id="list_callback_attempts",
        parameters=[CALLBACK_ID],
        summary="List the attempts of a callback",
        description="One row per HTTP try, newest first: request headers (secrets masked), "
        "the answer's status, headers and the start of its body, or the error.",
        responses=responses({200: AttemptSerializer(many=True)}, 400, 404),
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def attempts(self, request: Request, pk: str | None = None) -> Response:
        callback = self.get_object()
        page = self.paginate_queryset(selectors.attempts_of(callback))
        marked = Hook.objects.filter(pk=callback.hook_id).values_list("secret_headers", flat=True)
        context = {"secret_headers": marked.first() or ()}
        return self.get_paginated_response(AttemptSerializer(page, many=True, context=context).data)

    @extend_schema(
        operation_id="delete_old_callbacks",
        summary="Delete old callbacks",
        description="What `manage.py delete_old_callbacks DAYS` does: deletes callbacks "
        "created more than `days` days ago, in batches; callbacks not delivered yet are kept "
        "unless `include_undelivered`. Space is not reclaimed here (no `VACUUM` inside a "
        "request): the command does that. Only the callbacks of the user's owners are "
        "deleted, unless the user sees every owner.",
        request=DeleteOldSerializer,
        responses=responses({200: DeletedSerializer}, 400, 415),
    )
    @action(
        detail=False, methods=["post"], url_path="delete-old", serializer_class=DeleteOldSerializer
    )
    def delete_old(self, request: Request) -> Response:
        serializer = DeleteOldSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deleted = services.delete_old_callbacks(
            **serializer.validated_data, vacuum=False, owners=self.owners
        )
        return Response(DeletedSerializer({"deleted": deleted}).data)


# --- explicit events -----------------------------------------------------------


class EventViewSet(HttpHooksAPIMixin, viewsets.GenericViewSet):
    """Explicit events: ``send_event`` over HTTP."""

    queryset = Callback.objects.none()
    serializer_class = SendEventSerializer
    parser_classes = [ExactJSONParser]
    action_permissions = {"create": "http_hooks.send_event"}

    @extend_schema(
        operation_id="send_event",
        summary="Send an explicit event",
        description="Stores one callback for every enabled hook whose `event_types` take "
        "`event_type` (and whose conditions hold for `payload`), as `send_event` does, and "
        "answers with their ids; the sender delivers them. Needs the "
        "`http_hooks.send_event` permission (staff need none). Staff and users with "
        "`http_hooks.view_all_hooks` reach the hooks with no owner, and those of `owner` "
        "when they name one. Any other user sends as one of their owners (`owner`, required "
        "when they act for several) and reaches that owner's hooks only.",
        request=SendEventSerializer,
        responses=responses({202: SendEventResultSerializer}, 400, 415),
        examples=[
            OpenApiExample(
                "An order was paid",
                value={
                    "event_type": "order.paid",
                    "payload": {"id": 42, "total": "9.90"},
                    "key": "42",
                },
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        callbacks = services.send_event_for(
            self.owners,
            data["event_type"],
            data["payload"],
            owner=data.get("owner"),
            key=data.get("key"),
        )
        return Response(
            SendEventResultSerializer({"ids": [callback.pk for callback in callbacks]}).data,
            status=status.HTTP_202_ACCEPTED,
        )


@extend_schema_view(
    list=extend_schema(
        operation_id="list_event_types",
        summary="List the known event types",
        description="Sorted by name: the types declared in `EVENT_TYPES` (with their "
        "descriptions), the names the enabled hooks' `event_types` subscribe to (wildcards "
        "left out) and the types their models' signals send "
        "(`<app_label>.<model>.created|updated|deleted`, a custom signal's path). Read from "
        "the hooks the process has loaded, never from the callbacks.",
        responses=responses({200: EventTypeSerializer}, 400, 404),
    ),
)
class EventTypeViewSet(HttpHooksAPIMixin, viewsets.GenericViewSet):
    """The event types that hooks can take."""

    queryset = Hook.objects.none()
    serializer_class = EventTypeSerializer
    pagination_class = HooksPageNumberPagination

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.known_event_types(self.owners))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
