"""The admin's callback list on a big table: counts that stop, searches by index.

PostgreSQL's statistics are made to say the table holds a million callbacks
(``pg_class.reltuples``, in the test's transaction), so that the admin takes the
way it takes on such a table while the test writes three rows.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from http_hooks.models import Callback, CallbackStatus
from http_hooks.selectors import count_rows, estimated_rows
from shop.models import Order

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:http_hooks_callback_changelist"
TABLE = Callback._meta.db_table
HOOKS = {"BLOCK_PRIVATE_NETWORKS": False}


@pytest.fixture
def callbacks(make_hook) -> list[Callback]:
    make_hook(name="orders")
    for name in ("a", "b", "c"):
        Order.objects.create(name=name)
    Callback.objects.update(target_url="http://receiver.example/hook")  # no digits
    return list(Callback.objects.order_by("pk"))


def million_callbacks_says_postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            # The planner scales reltuples / relpages to the table's size on disk.
            "UPDATE pg_class SET reltuples = 1000000,"
            " relpages = pg_relation_size(oid) / current_setting('block_size')::int"
            " WHERE oid = %s::regclass",
            [TABLE],
        )


def callback_queries(queries) -> list[str]:
    """The SQL run on the callbacks table (EXPLAINs, which read no row, left out)."""
    return [q["sql"] for q in queries if TABLE in q["sql"] and not q["sql"].startswith("EXPLAIN")]


def listed(response) -> list[int]:
    return [callback.pk for callback in response.context["cl"].result_list]


@pytest.mark.parametrize(
    "spelling",
    [str, lambda u: str(u).upper(), lambda u: u.hex, lambda u: f"  {{{u}}} "],
    ids=["canonical", "upper-case", "no-dashes", "braces-and-spaces"],
)
def test_search_finds_a_callback_by_its_event_id(admin_client, callbacks, spelling):
    wanted = callbacks[1]
    response = admin_client.get(reverse(CHANGELIST), {"q": spelling(wanted.event_id)})
    assert listed(response) == [wanted.pk]


def test_search_by_a_number_finds_that_callback_and_that_object(admin_client, callbacks):
    first, _, third = callbacks
    # No other object id holds the number as text (orders get any pk: "136" holds "36").
    Callback.objects.update(object_id="order")
    Callback.objects.filter(pk=third.pk).update(object_id=str(first.pk))
    response = admin_client.get(reverse(CHANGELIST), {"q": str(first.pk)})
    assert sorted(listed(response)) == [first.pk, third.pk]


def test_search_on_a_small_table_finds_text_as_before(admin_client, callbacks):
    Callback.objects.filter(pk=callbacks[0].pk).update(status_details="HTTP 502 from the proxy")
    response = admin_client.get(reverse(CHANGELIST), {"q": "502 proxy"})
    assert listed(response) == [callbacks[0].pk]
    assert not [str(m) for m in response.context["messages"]]


@override_settings(HTTP_HOOKS={**HOOKS, "ADMIN_COUNT_LIMIT": 5})
def test_a_list_within_the_count_limit_is_counted_exactly(admin_client, callbacks):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(CHANGELIST))
    assert response.context["cl"].result_count == 3
    counts = [sql for sql in callback_queries(queries) if "COUNT(" in sql]
    assert len(counts) == 1
    assert "LIMIT 6" in counts[0]
    page = response.content.decode()
    assert "3 callbacks" in page
    assert "estimate" not in page


@override_settings(HTTP_HOOKS={**HOOKS, "ADMIN_COUNT_LIMIT": 2})
def test_beyond_the_count_limit_sqlite_counts_them_all(admin_client, callbacks):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL estimates instead (test_a_huge_table_is_never_counted_whole)")
    response = admin_client.get(reverse(CHANGELIST))
    assert response.context["cl"].result_count == 3
    assert "about" not in response.content.decode()


@pytest.mark.postgres
@override_settings(HTTP_HOOKS={**HOOKS, "ADMIN_COUNT_LIMIT": 2})
def test_a_huge_table_is_never_counted_whole(admin_client, callbacks):
    million_callbacks_says_postgres()
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(CHANGELIST))
    counts = [sql for sql in callback_queries(queries) if "COUNT(" in sql]
    assert counts, callback_queries(queries)
    assert all("LIMIT 3" in sql for sql in counts), counts
    cl = response.context["cl"]
    assert cl.result_count == 1_000_000
    assert cl.paginator.num_pages == 1  # pages as far as the 2 rows counted, not 10,000
    page = response.content.decode()
    assert "1000000 callbacks" in page
    assert "the total is PostgreSQL's estimate, and the pages go as far as the first 2" in page
    assert "1000000 results" not in page  # the search form does not show it as exact
    assert listed(response) == [c.pk for c in reversed(callbacks)][: cl.list_per_page]


@pytest.mark.postgres
@override_settings(HTTP_HOOKS={**HOOKS, "ADMIN_COUNT_LIMIT": 2})
def test_a_filtered_list_beyond_the_count_limit_shows_an_estimate(admin_client, callbacks):
    million_callbacks_says_postgres()
    response = admin_client.get(reverse(CHANGELIST), {"status__exact": "waiting"})
    cl = response.context["cl"]
    assert cl.paginator.row_count.estimated
    assert cl.result_count >= 3
    response = admin_client.get(reverse(CHANGELIST), {"status__exact": "error"})
    assert (response.context["cl"].result_count, listed(response)) == (0, [])
    assert "0 callbacks" in response.content.decode()


@pytest.mark.postgres
def test_search_on_a_huge_table_looks_ids_up_by_index(admin_client, callbacks):
    million_callbacks_says_postgres()
    wanted = callbacks[1]
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(CHANGELIST), {"q": str(wanted.event_id)})
    assert listed(response) == [wanted.pk]
    on_callbacks = callback_queries(queries)
    assert not [sql for sql in on_callbacks if "LIKE" in sql or "UPPER(" in sql], on_callbacks
    plan = response.context["cl"].queryset.explain()
    assert f"Seq Scan on {TABLE}" not in plan, plan
    assert "event_id" in plan and "object_id" in plan, plan


@pytest.mark.postgres
def test_text_search_on_a_huge_table_says_it_searched_ids_only(admin_client, callbacks):
    million_callbacks_says_postgres()
    Callback.objects.filter(pk=callbacks[0].pk).update(status_details="HTTP 502 from the proxy")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(CHANGELIST), {"q": "proxy"})
    assert listed(response) == []
    assert not [sql for sql in callback_queries(queries) if "LIKE" in sql]
    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("Searched ids only (event id, callback id, object id)")
    assert "about 1,000,000 callbacks" in message


@pytest.mark.postgres
def test_a_huge_table_offers_no_facet_counts(admin_client, callbacks):
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "Show counts" in page
    million_callbacks_says_postgres()
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "Show counts" not in page
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(CHANGELIST), {"_facets": "True"})
    assert response.status_code == 200
    assert not response.context["cl"].add_facets
    facet_counts = [sql for sql in callback_queries(queries) if "FILTER (WHERE" in sql]
    assert facet_counts == []


@pytest.mark.postgres
def test_a_huge_table_sorts_only_by_indexed_columns(admin_client, callbacks):
    small = admin_client.get(reverse(CHANGELIST)).context["cl"]
    assert {"tries", "http_status", "hook_name"} <= set(small.sortable_by)
    million_callbacks_says_postgres()
    response = admin_client.get(reverse(CHANGELIST), {"o": "8"})  # created, oldest first
    cl = response.context["cl"]
    assert cl.sortable_by == ["id", "created"]
    assert listed(response) == [c.pk for c in callbacks]
    plan = cl.queryset[: cl.list_per_page].explain()
    assert "callback_retention_idx" in plan, plan


@pytest.mark.postgres
def test_estimated_rows_reads_postgres_statistics(callbacks):
    million_callbacks_says_postgres()
    assert estimated_rows(Callback.objects.all()) == 1_000_000
    assert count_rows(Callback.objects.all(), exact_up_to=3) == (3, False)
    assert count_rows(Callback.objects.all(), exact_up_to=2) == (1_000_000, True)


def test_count_rows_elsewhere_counts_exactly(callbacks):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL estimates (test_estimated_rows_reads_postgres_statistics)")
    assert estimated_rows(Callback.objects.all()) is None
    waiting = Callback.objects.filter(status=CallbackStatus.WAITING)
    assert count_rows(waiting, exact_up_to=1) == (3, False)


def test_search_for_a_number_of_5000_digits_finds_nothing(admin_client, callbacks):
    """Python's int() refuses more than 4,300 digits: no id is that long anyway."""
    response = admin_client.get(reverse(CHANGELIST), {"q": "9" * 5000})
    assert response.status_code == 200
    assert listed(response) == []
