"""``Hook.changed_fields``: did a save change a field since the instance was loaded?

Only models with a hook that has ``changed_fields`` pay anything. For them
(``ChangeTracker.watch``, told by the registry as it loads hooks) a
``post_init`` receiver bound to that model alone keeps a copy of the watched
fields' values, by attribute name (``customer_id``), in the instance's
``__dict__``: the values as loaded, or as given to a new instance. A save
compares the instance with that copy (``has_changed``); the copy is refreshed
once the save's ``post_save`` hooks were tested (never before: they compare
against it), with the fields the save wrote (all, or ``update_fields``).

What counts as unknown, and so as changed: an instance made before its model
was watched, a field deferred when it was loaded (``.only()``/``.defer()``)
and read later. ``refresh_from_db()`` does not move the copy: a value another
process or a ``QuerySet.update()`` changed in the database counts as changed
at the instance's next save.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models
from django.db.models import signals as model_signals

SNAPSHOT = "_http_hooks_loaded"
# (name, attname) of each watched field.
Watched = tuple[tuple[str, str], ...]


def _kept(value: Any) -> Any:
    """A copy that later changes to a mutable value (a JSON field's dict) do not reach."""
    return copy.deepcopy(value) if isinstance(value, dict | list) else value


def has_changed(instance: Any, watched: Watched, update_fields: Iterable[str] | None) -> bool:
    """Whether this save changes one of ``watched``: a field it writes (all of them,
    or those in ``update_fields``) whose value differs from the copy, or is unknown."""
    state = instance.__dict__
    snapshot = state.get(SNAPSHOT)
    for name, attname in watched:
        if update_fields is not None and name not in update_fields and attname not in update_fields:
            continue
        if snapshot is None or attname not in snapshot or attname not in state:
            return True
        if state[attname] != snapshot[attname]:
            return True
    return False


class ChangeTracker:
    """Keeps the copy of watched fields on the instances of watched models."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[type[models.Model], Watched] = {}

    def watch(self, watched: Mapping[type[models.Model], Watched], *, replace: bool) -> None:
        """Watch these fields of these models, besides the ones watched already, or
        (``replace``) instead of them: a model no longer watched costs nothing again."""
        with self._lock:
            merged = dict(watched) if replace else dict(self._watched)
            if not replace:
                for model, fields in watched.items():
                    merged[model] = tuple(dict.fromkeys((*merged.get(model, ()), *fields)))
            for model in merged.keys() - self._watched.keys():
                model_signals.post_init.connect(
                    self._on_init, sender=model, weak=False, dispatch_uid=_uid(model)
                )
            for model in self._watched.keys() - merged.keys():
                model_signals.post_init.disconnect(sender=model, dispatch_uid=_uid(model))
            self._watched = merged

    def _on_init(self, sender: type[models.Model], instance: Any, **kwargs: Any) -> None:
        watched = self._watched.get(sender)
        if watched:
            state = instance.__dict__
            state[SNAPSHOT] = {
                attname: _kept(state[attname]) for _, attname in watched if attname in state
            }

    def saved(self, sender: type, instance: Any, update_fields: Iterable[str] | None) -> None:
        """After a save of ``instance``: the values it wrote are the ones to compare with."""
        watched = self._watched.get(sender)
        if not watched:
            return
        state = instance.__dict__
        written = {
            attname: _kept(state[attname])
            for name, attname in watched
            if attname in state
            and (update_fields is None or name in update_fields or attname in update_fields)
        }
        # A new dict: a copy.copy() of the instance shares the old one.
        state[SNAPSHOT] = {**state.get(SNAPSHOT, {}), **written}


def _uid(model: type[models.Model]) -> str:
    return f"http_hooks:changes:{model._meta.label}"


tracker = ChangeTracker()
