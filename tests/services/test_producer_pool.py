"""Enqueueing from many short-lived threads never blocks.

Threaded servers (runserver in ``make run``, Django's live server, gunicorn gthread) serve
requests on threads that end. A pool producer kept per thread would be lost with each, and after
``broker_pool_limit`` (10) of them every later enqueue would wait forever: the signup stored,
the visitor's request never answered.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from esp_forms import outbox

pytestmark = pytest.mark.services


def test_enqueueing_from_many_short_lived_threads_never_blocks(settings):
    task = outbox.task_named(outbox.REFRESH_TASK)
    results: list[bool] = []

    def one_request() -> None:
        # An id no row has: the worker (if any) finds nothing to do.
        results.append(outbox.send_task(task, uuid.uuid4()))

    for number in range(15):
        thread = threading.Thread(target=one_request, daemon=True)
        thread.start()
        thread.join(timeout=5)
        assert not thread.is_alive(), f"request thread {number + 1} blocked in send_task"
    assert results == [True] * 15
