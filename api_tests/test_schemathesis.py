"""Property-based tests of the REST API with schemathesis: for every operation of
the committed ``openapi.yaml``, generated requests (valid and invalid) sent to the
demo project served by ``runserver`` never get a 5xx, every answer matches the
schema (status code, content type, headers, body), input the schema calls
invalid is refused, and no operation answers without credentials."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from .demo_server import ROOT, DemoServer

pytestmark = pytest.mark.slow

# The project's schemathesis.toml, which the CLI reads when run from the checkout.
schema = schemathesis.openapi.from_path(
    ROOT / "openapi.yaml", config=SchemathesisConfig.from_path(ROOT / "schemathesis.toml")
)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    server = DemoServer(tmp_path_factory.mktemp("schemathesis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def session():
    with requests.Session() as session:
        yield session


def keep_targets_local(case: schemathesis.Case) -> None:
    """Point generated hooks at a closed local port, whatever host was generated, so
    that ``POST /hooks/{id}/test/`` never sends a request to a real host."""
    if not isinstance(case.body, dict) or not isinstance(case.body.get("target_url"), str):
        return
    try:
        parts = urlsplit(case.body["target_url"])
        if parts.hostname:
            case.body["target_url"] = urlunsplit(parts._replace(netloc="127.0.0.1:9"))
    except ValueError:
        pass


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, demo_server, session):
    keep_targets_local(case)
    case.call_and_validate(
        base_url=demo_server.url,
        session=session,
        # As ``auth``, not as a header: ``ignored_auth`` then knows the credentials
        # and sends each request again without them, expecting a 401 or 403.
        auth=demo_server.auth,
        timeout=30,
    )
