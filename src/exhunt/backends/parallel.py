"""Many queries against a remote engine at once, within its limits: bounded concurrency, and
retries with exponential backoff when the engine says it is overloaded (HTTP 429, Kusto's
throttling errors, Log Analytics' rate limit).

A replay that cannot be one query runs one query per window; on a cluster each is a network
round trip, so they are sent a few at a time (`max_concurrency`), never all at once: a busy
cluster or workspace answers a burst by throttling, and the retry waits longer each time.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from exhunt.errors import RuleError

if TYPE_CHECKING:
    from datetime import datetime

    import pyarrow as pa

    from exhunt.backends.base import Backend, Window

T = TypeVar("T")
R = TypeVar("R")

#: Queries in flight at once against one engine (Log Analytics allows 5 concurrent per user).
MAX_CONCURRENCY = 4
#: Attempts of one query when it is throttled, and the first wait (doubled each time, jittered).
ATTEMPTS = 6
FIRST_WAIT = 1.0
MAX_WAIT = 60.0


class Throttled(Exception):
    """The engine refused a request because of load; `retry_after` is its hint, in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def backoff(attempt: int, hint: float | None = None) -> float:
    """Seconds to wait before attempt `attempt + 1`: the engine's hint, else exponential with jitter."""
    if hint is not None and hint > 0:
        return min(hint, MAX_WAIT)
    return min(MAX_WAIT, FIRST_WAIT * (2 ** attempt)) * (0.5 + random.random() / 2)


def with_retries(call: Callable[[], R], attempts: int = ATTEMPTS,
                 sleep: Callable[[float], None] | None = None) -> R:
    """`call()`, tried again after a growing wait each time it raises Throttled; a RuleError
    saying so when it is still throttled after `attempts` tries."""
    for attempt in range(attempts):
        try:
            return call()
        except Throttled as exc:
            if attempt == attempts - 1:
                raise RuleError(f"{exc}; still refused after {attempts} attempts over "
                                f"{sum(backoff(i) for i in range(attempts - 1)):.0f}+ s: try again later "
                                "or with fewer --jobs") from None
            (sleep or time.sleep)(backoff(attempt, exc.retry_after))
    raise AssertionError("unreachable")


def bounded_map(fn: Callable[[T], R], items: Sequence[T], max_concurrency: int = MAX_CONCURRENCY) -> list[R]:
    """[fn(item) for item in items], at most `max_concurrency` at a time, results in order.

    The first exception stops the calls not yet started and is raised.
    """
    if max_concurrency <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    failed = threading.Event()

    def guarded(item: T) -> R:
        if failed.is_set():
            raise _Cancelled
        try:
            return fn(item)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="exhunt-remote") as pool:
        futures = [pool.submit(guarded, item) for item in items]
        first: BaseException | None = None
        results: list[R] = []
        for future in futures:
            try:
                results.append(future.result())
            except _Cancelled:
                continue
            except BaseException as exc:
                first = first or exc
        if first is not None:
            raise first
        return results


class _Cancelled(Exception):
    """A call not made because an earlier one failed."""


def run_windows(backend: Backend, kql: str, windows: list[Window],
                max_concurrency: int = MAX_CONCURRENCY) -> list[pa.Table]:
    """Each window's run of `kql` (rows of the window, now() at its end), in window order,
    with at most `max_concurrency` queries in flight; throttled queries are retried by the backend."""

    def one(window: tuple[datetime, datetime]) -> pa.Table:
        return backend.query(kql, window[1], window)

    return bounded_map(one, windows, max_concurrency)
