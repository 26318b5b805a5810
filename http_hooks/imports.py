"""What a dotted path written by a hook's author may import: the project's own code.

Signal paths and serializer paths come from API clients and admin users.
Importing whatever they name would run the top-level code of any module on
``sys.path`` (``this.s`` prints the Zen of Python; a module of one's own could
do anything) before the answer says "invalid". So the path is checked as a
string before anything is imported: its module must already be loaded, or be
an installed app's package or a module under it. A signal nobody imported
cannot be sent, and every parent package importlib imports on the way is part
of the same installed app.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Any

from django.apps import apps

MAX_PATH_LENGTH = 255
DOTTED_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+"
_DOTTED = re.compile(DOTTED_PATTERN)


class RefusedPath(Exception):
    """A path that names no object of the project's code; the message says why."""


def project_object(path: Any) -> Any:
    """The object at ``path`` (``package.module.name``), imported only from the project.

    Raises ``RefusedPath`` for a path that is not dotted Python identifiers,
    whose module is neither loaded nor in an installed app, that fails to
    import, or whose module has no such name. The name is read from the
    module's namespace, so a module-level ``__getattr__`` cannot import more.
    """
    if isinstance(path, str) and len(path) > MAX_PATH_LENGTH:
        raise RefusedPath(f"a path has at most {MAX_PATH_LENGTH} characters")
    if not isinstance(path, str) or not _DOTTED.fullmatch(path):
        raise RefusedPath(
            "give the full dotted import path (package.module.name, of Python identifiers)"
        )
    module_name, name = path.rsplit(".", 1)
    module = sys.modules.get(module_name)
    if module is None:
        if not in_installed_app(module_name):
            raise RefusedPath(
                f"cannot import it: module {module_name!r} is neither loaded nor part of an "
                "installed app, and only the project's own code is imported"
            )
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise RefusedPath(f"cannot import it ({type(exc).__name__}: {exc})") from exc
    try:
        return vars(module)[name]
    except (KeyError, TypeError):
        raise RefusedPath(f"cannot import it: module {module_name!r} has no {name!r}") from None


def shown(path: Any) -> str:
    """``path`` as an error message shows it: its repr, cut short."""
    text = repr(path)
    return text if len(text) <= 100 else text[:97] + "..."


def in_installed_app(module_name: str) -> bool:
    """Whether ``module_name`` is an installed app's package or a module under it."""
    return any(
        module_name == config.name or module_name.startswith(config.name + ".")
        for config in apps.get_app_configs()
    )
