"""Which of the hooks found for a signal fire: their conditions and changed fields.

The registry compiles a ``HookRule`` for each hook that has either when it
loads the hooks, so that a save only runs the compiled tests: no parsing, no
query (unless a condition follows a foreign key whose object is not loaded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models

from .changes import Watched, has_changed
from .conditions import Conditions, compile_conditions, instance_value
from .outbox import SAVE_SIGNALS, event_type_for
from .validators import validate_changed_fields


@dataclass(frozen=True, slots=True)
class HookRule:
    """What a hook asks of an occurrence besides its model and signal."""

    model: type[models.Model]
    conditions: Conditions | None
    changed_fields: Watched

    def accepts(self, path: str, kwargs: dict[str, Any]) -> bool:
        """Whether the hook fires for this occurrence of signal ``path``.

        ``changed_fields`` applies to an update by ``pre_save`` or ``post_save``
        (a create always fires); the conditions are tested on the signal's
        instance, and are false when it sends none or one of another model.
        """
        instance = kwargs.get("instance")
        if (
            self.changed_fields
            and path in SAVE_SIGNALS
            and event_type_for(path, kwargs) == "updated"
            and not has_changed(instance, self.changed_fields, kwargs.get("update_fields"))
        ):
            return False
        if self.conditions is None:
            return True
        return isinstance(instance, self.model) and self.conditions.matches(
            instance, instance_value
        )


def compile_rule(hook: Any, model: type[models.Model]) -> HookRule | None:
    """The rule of ``hook`` on ``model``; None when it has no conditions or changed
    fields. Raises ``InvalidHookError`` when they no longer fit the model."""
    conditions = compile_conditions(hook.conditions, model, label=f"hook {hook.pk}")
    changed = tuple(
        (name, model._meta.get_field(name).attname)
        for name in validate_changed_fields(hook.changed_fields, model)
    )
    if conditions is None and not changed:
        return None
    return HookRule(model=model, conditions=conditions, changed_fields=changed)


def select_hooks(hooks: Sequence[Any], path: str, kwargs: dict[str, Any]) -> list[Any]:
    """The hooks that fire: those without a rule, and those whose rule accepts."""
    return [hook for hook in hooks if hook.rule is None or hook.rule.accepts(path, kwargs)]


def watched_by_model(table: Mapping[tuple[str, type], Sequence[Any]]) -> dict[type, Watched]:
    """The fields to watch on each model: those of its save hooks' ``changed_fields``."""
    watched: dict[type, Watched] = {}
    for (path, model), hooks in table.items():
        if path not in SAVE_SIGNALS:
            continue
        for hook in hooks:
            if hook.rule is not None and hook.rule.changed_fields:
                fields = (*watched.get(model, ()), *hook.rule.changed_fields)
                watched[model] = tuple(dict.fromkeys(fields))
    return watched
