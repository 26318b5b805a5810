"""Who may use the REST API (``HTTP_HOOKS['PERMISSION_CLASSES']``)."""

from __future__ import annotations

from rest_framework.permissions import BasePermission, DjangoModelPermissions


class IsStaffOrModelPermission(DjangoModelPermissions):
    """Staff users may do everything; other users need the model permission of the
    action (``view_`` to read, ``add_``/``change_``/``delete_`` to write).
    Anonymous users get nothing.

    A view's ``action_permissions`` maps an extra action to the permission it needs
    whatever its HTTP method: ``{"resend": "change"}`` asks for ``change_callback``
    for ``POST /callbacks/{id}/resend/`` (which would otherwise ask for ``add_``);
    a full name (``"http_hooks.send_event"``) asks for that permission.
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if user.is_staff:
            return True
        action_perm = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if action_perm is None:
            return super().has_permission(request, view)
        if "." in action_perm:
            return user.has_perm(action_perm)
        opts = self._queryset(view).model._meta
        return user.has_perm(f"{opts.app_label}.{action_perm}_{opts.model_name}")


class CanViewMetrics(BasePermission):
    """Staff users, and users with the ``http_hooks.view_metrics`` permission (a
    Prometheus scraper's account, for one). Anonymous users get nothing."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and (user.is_staff or user.has_perm("http_hooks.view_metrics"))
        )
