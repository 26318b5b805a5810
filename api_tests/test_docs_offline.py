"""A brand-new project set up only as the README's "Install in your project" says:
its Swagger UI and ReDoc pages render in headless Chromium, and no request of the
browser leaves 127.0.0.1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .browser import chromium, render
from .demo_server import free_port
from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

pytestmark = pytest.mark.slow


def readme_snippet(first_line: str) -> str:
    """The Python block of "Install in your project" that starts with ``first_line``."""
    text = README.read_text()
    section = text[text.index("## Install in your project") :]
    section = section[: section.index("\n## ", 1)]
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"README's install section has no block starting {first_line!r}")


@pytest.fixture
def readme_project(tmp_path):
    """``startproject``, the README's settings and urls appended as they stand,
    ``migrate``, then ``runserver`` on a free 127.0.0.1 port."""
    chromium()  # skips (or fails) before the project is built
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HTTP_HOOKS_", "DJANGO_")) and key != "PYTHONPATH"
    }
    project = tmp_path / "newproject"
    project.mkdir()

    def run(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{args}:\n{done.stdout}{done.stderr}"

    run("-m", "django", "startproject", "mysite", ".")
    with (project / "mysite" / "settings.py").open("a") as settings:
        settings.write("\n" + readme_snippet("# settings.py"))
    with (project / "mysite" / "urls.py").open("a") as urls:
        urls.write("\n" + readme_snippet("# urls.py"))
    run("manage.py", "migrate", "--no-input")

    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: b"Quit the server" in log.read_bytes(),
            alive=lambda: server.poll() is None,
            message=lambda: f"runserver did not start:\n{log.read_text()}",
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize(
    ("page", "rendered"),
    [
        # Swagger UI lists each operation as a block with its method and path.
        ("/api/docs/", r'class="opblock-summary-path"[^>]*>.*?/api/hooks/'),
        # ReDoc shows each operation's method and path in its request panel.
        ("/api/redoc/", r'class="[^"]*http-verb get">get</span><span[^>]*>/api/hooks/<'),
    ],
)
def test_docs_render_offline_in_a_project_set_up_as_the_readme_says(
    readme_project, tmp_path, page, rendered
):
    dom, requested = render(readme_project + page, tmp_path)
    assert re.search(rendered, dom), dom[:2000]
    assert readme_project + "/api/schema/" in requested
    hosts = {urlsplit(url).hostname for url in requested}
    assert hosts == {"127.0.0.1"}, sorted(requested)
