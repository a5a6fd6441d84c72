"""Integration review: the outbox's per-thread producer is never given back to the pool.

``outbox._producer`` keeps one producer from the Celery app's pool per thread and releases it
only when the app changes. A threaded server (``runserver`` in ``make run``, Django's live
server, gunicorn gthread with thread churn, mod_wsgi) runs requests on threads that end, so
each ending thread leaks one pool slot; after ``broker_pool_limit`` (10) such threads every
later enqueue blocks forever in ``producer_pool.acquire(block=True)``: the signup is stored but
the visitor's request never returns (``make run``: the 11th signup hangs).
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
