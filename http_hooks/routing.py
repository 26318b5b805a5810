"""Which of the hooks found for a signal fire: their owner, conditions and changed fields.

The registry files the hooks of each (signal, model) in a ``Bucket``: the
project's hooks, and each owner's hooks under the owner's key, so that a save
reads its instance's owner once (``OWNER_FIELDS``) and looks at that owner's
hooks alone, however many owners there are. It compiles a ``HookRule`` for each
hook that has conditions or changed fields when it loads the hooks, so that a
save only runs the compiled tests: no parsing, no query (unless a condition or
the owner's path follows a foreign key whose object is not loaded).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from .changes import Watched, has_changed
from .conditions import Conditions, compile_conditions, instance_value
from .outbox import SAVE_SIGNALS, event_type_for
from .owner_fields import OwnerPath, owner_of, owner_paths
from .validators import validate_changed_fields

# (signal path, model) a hook fires for.
Route = tuple[str, type[models.Model]]


@dataclass(frozen=True, slots=True)
class Bucket:
    """The hooks of one (signal, model): the project's, which fire for every instance,
    and each owner's, which fire only for the instances of that owner (by id order)."""

    model: type[models.Model]
    owner_path: OwnerPath | None
    project: tuple[Any, ...] = ()
    owned: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        yield from self.project
        for hooks in self.owned.values():
            yield from hooks

    def __bool__(self) -> bool:
        return bool(self.project or self.owned)

    def for_instance(self, instance: Any) -> tuple[Any, ...]:
        """The project's hooks, and those of the owner ``instance`` belongs to."""
        if not self.owned or self.owner_path is None or not isinstance(instance, self.model):
            return self.project
        owner = owner_of(instance, self.owner_path)
        mine = self.owned.get(owner) if owner is not None else None
        return self.project + mine if mine else self.project


def place(
    table: Mapping[Route, Bucket], removed: Iterable[Any], added: Iterable[Any]
) -> dict[Route, Bucket]:
    """A new table: ``table`` without the hooks ``removed`` and with the hooks ``added``
    (each with its ``routes``). Only the buckets they touch are copied, so a change
    of one hook costs one owner's bucket, not a pass over every hook; the table
    given is left as it is (other threads may be reading it)."""
    removed, added = list(removed), list(added)
    gone = {hook.pk for hook in removed}
    new = dict(table)
    for route in {route for hook in (*removed, *added) for route in hook.routes}:
        model = route[1]
        old = table.get(route) or Bucket(model=model, owner_path=owner_paths().get(model))
        project = [hook for hook in old.project if hook.pk not in gone]
        owned = dict(old.owned)
        touched = {hook.owner for hook in (*removed, *added) if route in hook.routes}
        mine: dict[str, list[Any]] = {
            owner: [hook for hook in owned.pop(owner, ()) if hook.pk not in gone]
            for owner in touched - {""}
        }
        for hook in added:
            if route in hook.routes:
                (mine[hook.owner] if hook.owner else project).append(hook)
        owned.update(
            (owner, tuple(sorted(hooks, key=_pk))) for owner, hooks in mine.items() if hooks
        )
        bucket = Bucket(
            model=model,
            owner_path=old.owner_path,
            project=tuple(sorted(project, key=_pk)),
            owned=owned,
        )
        if bucket:
            new[route] = bucket
        else:
            new.pop(route, None)
    return new


def _pk(hook: Any) -> int:
    return hook.pk


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


def watched_by_model(table: Mapping[Route, Iterable[Any]]) -> dict[type, Watched]:
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
