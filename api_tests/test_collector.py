"""The garbage collector's pace while a sender runs (``delivery.collector``)."""

import gc
import os
import threading

import pytest

from http_hooks.api import send_callbacks
from http_hooks.delivery.collector import SENDING_THRESHOLD, fewer_collections
from shop.models import Order

from .receiver import Behaviour


@pytest.fixture
def default_threshold():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield (700, 10, 10)
    gc.set_threshold(*saved)


@pytest.mark.django_db
def test_a_run_collects_less_often_and_gives_the_pace_back(make_hook, receiver, default_threshold):
    seen = []

    def pick(request):
        seen.append(gc.get_threshold())
        return Behaviour(status=204)

    receiver.respond(pick=pick)
    make_hook()
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    assert seen == [(SENDING_THRESHOLD, 10, 10)]
    assert gc.get_threshold() == default_threshold


def test_a_higher_threshold_of_the_process_is_left_alone(default_threshold):
    gc.set_threshold(100_000, 20, 20)
    with fewer_collections():
        assert gc.get_threshold() == (100_000, 20, 20)
    assert gc.get_threshold() == (100_000, 20, 20)


def test_overlapping_runs_put_the_pace_back_when_the_last_ends(default_threshold):
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with fewer_collections():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with fewer_collections():
        second_in.set()
        first_out.wait(5)
        seen["after the first ended"] = gc.get_threshold()
    thread.join(5)
    assert seen["after the first ended"] == (SENDING_THRESHOLD, 10, 10)
    assert gc.get_threshold() == default_threshold


def test_a_change_made_during_a_run_is_kept(default_threshold):
    with fewer_collections():
        gc.set_threshold(5_000, 10, 10)
    assert gc.get_threshold() == (5_000, 10, 10)


def test_a_run_that_fails_gives_the_pace_back(default_threshold):
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the database went away")
    assert gc.get_threshold() == default_threshold


def test_collection_switched_off_stays_off(default_threshold):
    gc.set_threshold(0, 10, 10)
    with fewer_collections():
        assert gc.get_threshold() == (0, 10, 10)
    assert gc.get_threshold() == (0, 10, 10)


# Forking beside a running thread is the case itself (Python 3.12 warns of it).
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_during_a_run_puts_the_pace_back(default_threshold):
    """A Celery pool child is forked while the sweep runs in a thread of its parent:
    the child has no such run, and must neither keep the run's pace nor count it."""
    running, done = threading.Event(), threading.Event()

    def run():
        with fewer_collections():
            running.set()
            done.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert running.wait(5)
        pid = os.fork()
        if pid == 0:  # the child: report by exit code, never return into pytest
            ok = gc.get_threshold() == default_threshold
            with fewer_collections():
                ok = ok and gc.get_threshold() == (SENDING_THRESHOLD, 10, 10)
            ok = ok and gc.get_threshold() == default_threshold
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert gc.get_threshold() == (SENDING_THRESHOLD, 10, 10)  # the parent's run goes on
    finally:
        done.set()
        thread.join(5)
    assert gc.get_threshold() == default_threshold
