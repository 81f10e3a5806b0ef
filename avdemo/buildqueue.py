"""A fair build queue: one job at a time, in turn by visitor (the next job is the oldest of the visitor
served least recently, so one visitor's many builds do not hold everyone else up), with each job's place
in the queue and cancellation (a queued job is dropped; a running one stops at its next
``check_cancelled``)."""
from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from .errors import AVDemoError

_running = threading.local()


class Cancelled(AVDemoError):
    """A build its visitor cancelled."""


def check_cancelled() -> None:
    """In a running job: raise ``Cancelled`` when its visitor cancelled it; elsewhere nothing."""
    job = getattr(_running, "job", None)
    if job is not None and job.stop.is_set():
        raise Cancelled("the build was cancelled")


@dataclass(eq=False)
class Job:
    key: Hashable
    owner: str
    fn: Callable[..., Any]
    args: tuple
    seq: int
    future: Future = field(default_factory=Future)
    stop: threading.Event = field(default_factory=threading.Event)


class BuildQueue:
    """Jobs by key, run one at a time by a worker thread (started on the first job)."""

    def __init__(self) -> None:
        self._jobs: dict[Hashable, Job] = {}
        self._queued: list[Job] = []
        self._running: Job | None = None
        self._served: dict[str, int] = {}          # owner -> when it was last served (a counter)
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any, owner: str = "app",
               admit: Callable[[], None] | None = None) -> Future:
        """The job ``key`` (``fn(*args)``): the existing one, or a new one queued for ``owner`` (after
        ``admit()``, which may refuse it) when there is none or the last one failed or was cancelled."""
        with self._cond:
            job = self._jobs.get(key)
            if job is not None and not (job.future.done() and job.future.exception() is not None):
                return job.future
            if admit is not None:
                admit()
            job = self._jobs[key] = Job(key, owner, fn, args, next(self._seq))
            self._queued.append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="index", daemon=True)
                self._worker.start()
            self._cond.notify()
            return job.future

    def _order(self) -> list[Job]:
        """The queued jobs in the order they will run: round robin over owners, least recently served first."""
        by_owner: dict[str, list[Job]] = {}
        for job in sorted(self._queued, key=lambda j: j.seq):
            by_owner.setdefault(job.owner, []).append(job)
        owners = sorted(by_owner, key=lambda o: (self._served.get(o, -1), by_owner[o][0].seq))
        turns = itertools.zip_longest(*(by_owner[o] for o in owners))
        return [job for turn in turns for job in turn if job is not None]

    def position(self, key: Hashable) -> int | None:
        """0 for the running job, n for the n-th to run after it, None for no job waiting or running."""
        with self._cond:
            if self._running is not None and self._running.key == key:
                return 0
            order = self._order()
            return next((n for n, job in enumerate(order, 1) if job.key == key), None)

    def cancel(self, key: Hashable, owner: str) -> bool:
        """Cancel ``owner``'s job ``key``; whether there was one to cancel (another visitor's job is refused)."""
        with self._cond:
            job = self._jobs.get(key)
            if job is None or job.future.done():
                return False
            if job.owner != owner:
                raise AVDemoError("this build was started by another visitor (or the app); only they can cancel it")
            if job in self._queued:
                self._queued.remove(job)
                job.future.set_running_or_notify_cancel()
                job.future.set_exception(Cancelled("the build was cancelled before it started"))
            else:
                job.stop.set()
            return True

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queued:
                    self._cond.wait()
                job = self._order()[0]
                self._queued.remove(job)
                self._running = job
                self._served[job.owner] = next(self._seq)
                job.future.set_running_or_notify_cancel()
            _running.job = job
            try:
                job.future.set_result(job.fn(*job.args))
            except BaseException as e:  # noqa: BLE001 - the job's error goes to its waiters
                job.future.set_exception(e)
            finally:
                _running.job = None
                with self._cond:
                    self._running = None
