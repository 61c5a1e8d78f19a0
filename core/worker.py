"""One background thread for all model work, with cancellable generator jobs.

Why this exists: the UI thread must never run model code, and the model should see one request
at a time (no two jobs fighting over GPU memory; results arrive in submission order). Long work
is written in the napari/superqt ``thread_worker`` style: a *generator* whose every ``yield``
reports progress and is a safe point where cancellation takes effect, and whose ``return`` value
is the result. A plain function works too (its return value is the result).

Threading contract (read this before writing a callback):

* Every callback (``on_start``, ``on_progress``, ``on_result``, ``on_error``, ``on_cancelled``)
  runs **on the worker thread**, never on the thread that called ``submit`` or ``cancel``.
  The Qt adapter in ``ui/`` turns them into signals, which Qt delivers on the GUI thread;
  callbacks here must be quick and must not touch widgets.
* A callback that raises is logged (``logging``) and ignored: it never kills the worker.
* Never block the worker thread on another job: ``result()``/``wait()`` called there raise
  ``RuntimeError`` instead of deadlocking.
* When ``JobHandle.wait()`` returns True, the job's final callback has already returned.

Stale requests are not this module's business: the one coalescing mechanism is the window's
``ui.bridge.Bridge.request`` (one job per key in flight, the newest waiting). ``JobState`` is the
one job-lifecycle vocabulary; the bridge's ``Task`` uses it too. A cancelled job's result, if it
still produced one, is discarded.

This module imports neither Qt nor torch.
"""
from __future__ import annotations

import enum
import inspect
import itertools
import logging
import threading
import time
import traceback as _traceback
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["Job", "JobCancelled", "JobHandle", "JobState", "Worker", "run_inline"]


class JobState(str, enum.Enum):
    """Life cycle: QUEUED -> RUNNING -> DONE | FAILED | CANCELLED (QUEUED -> CANCELLED if dropped)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class JobCancelled(Exception):
    """Raised by ``JobHandle.result()`` for a cancelled job; a job may also raise it to stop itself."""


_ids = itertools.count(1)


def _describe(fn: Callable[..., Any]) -> str:
    """A readable job name from the function (functools.partial and callables included)."""
    target = getattr(fn, "func", fn)  # functools.partial
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or type(target).__name__


@dataclass(eq=False)
class Job:
    """One unit of work and its outcome. Owned by the worker; callers hold a `JobHandle`.

    ``args``/``kwargs`` and callbacks are left out of ``repr`` because they can be large tensors.
    Times are ``time.perf_counter()`` values.
    """

    fn: Callable[..., Any] = field(repr=False)
    args: tuple[Any, ...] = field(default=(), repr=False)
    kwargs: dict[str, Any] = field(default_factory=dict, repr=False)
    name: str = ""
    on_start: Callable[[], object] | None = field(default=None, repr=False)
    on_progress: Callable[[Any], object] | None = field(default=None, repr=False)
    on_result: Callable[[Any], object] | None = field(default=None, repr=False)
    on_error: Callable[[BaseException], object] | None = field(default=None, repr=False)
    on_cancelled: Callable[[], object] | None = field(default=None, repr=False)
    id: int = field(default_factory=lambda: next(_ids), init=False)
    state: JobState = field(default=JobState.QUEUED, init=False)
    result: Any = field(default=None, init=False, repr=False)
    error: BaseException | None = field(default=None, init=False, repr=False)
    traceback: str | None = field(default=None, init=False, repr=False)
    submitted_at: float = field(default_factory=time.perf_counter, init=False, repr=False)
    started_at: float | None = field(default=None, init=False, repr=False)
    finished_at: float | None = field(default=None, init=False, repr=False)
    _cancel: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = _describe(self.fn)

    def cancel_requested(self) -> bool:
        """The flag the job (via its ``cancelled`` keyword) and the worker poll."""
        return self._cancel.is_set()


def _with_cancel_kwarg(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                       flag: Callable[[], bool]) -> dict[str, Any]:
    """Add ``cancelled=flag`` when `fn` names a ``cancelled`` parameter the caller did not bind.

    Optional by design: most jobs only need their yields; a job with one long step (an
    optimisation loop without yields) can poll ``cancelled()`` inside it.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return kwargs
    param = sig.parameters.get("cancelled")
    if param is None or param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
        return kwargs
    try:
        bound = sig.bind_partial(*args, **kwargs)
    except TypeError:
        return kwargs  # the call itself will fail with Python's own message
    if "cancelled" in bound.arguments:
        return kwargs
    return {**kwargs, "cancelled": flag}


def _drive(gen: Generator[Any, Any, Any], on_progress: Callable[[Any], object] | None,
           should_stop: Callable[[], bool], between: Callable[[], None] | None = None) -> Any:
    """Run a generator to its return value, forwarding yields; raise JobCancelled when told to stop.

    The stop flag is checked before every resume and again before forwarding a yielded value, so
    a cancel takes effect within one yield and no stale progress is reported. The generator is
    always closed, so the job's ``finally`` blocks run whatever happens.
    """
    try:
        while True:
            if should_stop():
                raise JobCancelled("cancelled")
            try:
                value = next(gen)
            except StopIteration as stop:
                return stop.value
            if should_stop():
                raise JobCancelled("cancelled")
            if on_progress is not None:
                on_progress(value)
            if between is not None:
                between()
    finally:
        gen.close()


class JobHandle:
    """What `Worker.submit` returns: cancel, state, blocking result, timing."""

    __slots__ = ("_job", "_worker")

    def __init__(self, job: Job, worker: Worker) -> None:
        self._job = job
        self._worker = worker

    @property
    def job(self) -> Job:
        return self._job

    @property
    def id(self) -> int:
        return self._job.id

    @property
    def name(self) -> str:
        return self._job.name

    @property
    def state(self) -> JobState:
        return self._job.state

    @property
    def error(self) -> BaseException | None:
        """The job's exception (with ``__traceback__``) when it FAILED."""
        return self._job.error

    @property
    def traceback(self) -> str | None:
        """The formatted traceback of a FAILED job, for a details dialog or the log."""
        return self._job.traceback

    @property
    def elapsed_s(self) -> float | None:
        """Run time in seconds (so far, while running); None if the job never started."""
        job = self._job
        if job.started_at is None:
            return None
        end = job.finished_at if job.finished_at is not None else time.perf_counter()
        return end - job.started_at

    def cancel(self) -> bool:
        """Ask the job to stop; True unless it had already finished.

        A queued job becomes CANCELLED at once and never starts; a running one stops at its next
        yield (or when it polls ``cancelled()``). ``on_cancelled`` follows on the worker thread.
        """
        return self._worker._request_cancel(self._job)

    def cancelled(self) -> bool:
        return self._job.state is JobState.CANCELLED

    def done(self) -> bool:
        """True once the job has finished and its final callback has returned."""
        return self._job._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (see `done`); False on timeout."""
        self._worker._check_not_worker_thread(self._job, "wait")
        return self._job._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The job's result; raises its exception, `JobCancelled`, or TimeoutError."""
        if not self.wait(timeout):
            raise TimeoutError(f"job {self._job.name!r} did not finish within {timeout} s")
        job = self._job
        if job.state is JobState.CANCELLED:
            raise JobCancelled(f"job {job.name!r} was cancelled")
        if job.state is JobState.FAILED:
            assert job.error is not None
            raise job.error
        return job.result

    def __repr__(self) -> str:
        return f"<JobHandle #{self._job.id} {self._job.name!r} {self._job.state.value}>"


class Worker:
    """Exactly one daemon thread running submitted jobs in order; see the module docstring."""

    def __init__(self, name: str = "latent-steer-worker") -> None:
        self._cond = threading.Condition(threading.RLock())
        self._queue: deque[Job] = deque()
        self._notices: deque[Job] = deque()  # dropped/cancelled queued jobs awaiting on_cancelled
        self._running: Job | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- public API
    @property
    def thread(self) -> threading.Thread:
        """The one thread every job and callback runs on."""
        return self._thread

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, fn: Callable[..., Any], /, *args: Any, name: str | None = None,
               on_progress: Callable[[Any], object] | None = None,
               on_result: Callable[[Any], object] | None = None,
               on_error: Callable[[BaseException], object] | None = None,
               on_cancelled: Callable[[], object] | None = None,
               on_start: Callable[[], object] | None = None,
               **kwargs: Any) -> JobHandle:
        """Queue ``fn(*args, **kwargs)``; callbacks run on the worker thread.

        Raises RuntimeError after `shutdown`. The keyword names above cannot be forwarded to `fn`.
        """
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {type(fn).__name__}")
        job = Job(fn, args, kwargs, name=name or "", on_start=on_start,
                  on_progress=on_progress, on_result=on_result, on_error=on_error,
                  on_cancelled=on_cancelled)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"cannot submit {job.name!r}: the worker has been shut down")
            self._queue.append(job)
            self._cond.notify_all()
        return JobHandle(job, self)

    def pending(self) -> int:
        """Jobs queued and not yet started (the running one is not counted)."""
        with self._cond:
            return len(self._queue)

    def idle(self) -> bool:
        """Nothing queued, nothing running, no callback still to deliver."""
        with self._cond:
            return self._idle_locked()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until `idle`; False on timeout. Not callable from the worker thread."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("wait_idle() on the worker thread would deadlock")
        with self._cond:
            return self._cond.wait_for(self._idle_locked, timeout)

    def shutdown(self, cancel: bool = True, timeout: float | None = 5.0) -> bool:
        """Cancel the queue (and the running job if `cancel`), stop the thread and join it.

        Idempotent. Returns True when the thread has stopped (False if `timeout` ran out, e.g. a
        plain function that ignores ``cancelled``, or when called from the worker thread itself,
        which cannot join itself; the thread then stops after the current job).
        """
        with self._cond:
            if not self._closed:
                self._closed = True
                for job in list(self._queue):
                    self._cancel_locked(job)
                if cancel and self._running is not None:
                    self._cancel_locked(self._running)
                self._cond.notify_all()
        if threading.current_thread() is self._thread:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        with self._cond:
            running = self._running.name if self._running is not None else None
            return f"<Worker {self._thread.name} running={running!r} pending={len(self._queue)} closed={self._closed}>"

    # ----------------------------------------------------------------- internals
    def _idle_locked(self) -> bool:
        return not self._queue and self._running is None and not self._notices

    def _check_not_worker_thread(self, job: Job, what: str) -> None:
        if threading.current_thread() is self._thread and not job._done.is_set():
            raise RuntimeError(f"{what}() for job {job.name!r} on the worker thread would deadlock")

    def _request_cancel(self, job: Job) -> bool:
        with self._cond:
            return self._cancel_locked(job)

    def _cancel_locked(self, job: Job) -> bool:
        """Set the flag; a queued job is removed and finished here, its callback queued as a notice."""
        if job.state.finished:
            return False
        job._cancel.set()
        if job.state is JobState.QUEUED:
            self._queue.remove(job)
            job.state = JobState.CANCELLED
            job.finished_at = time.perf_counter()
            self._notices.append(job)
            self._cond.notify_all()
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._notices and not self._closed:
                    self._cond.wait()
                job: Job | None = None
                if self._queue:
                    job = self._queue.popleft()
                    job.state = JobState.RUNNING
                    job.started_at = time.perf_counter()
                    self._running = job
                elif self._closed and not self._notices:
                    self._cond.notify_all()
                    return
            self._deliver_notices()  # dropped jobs hear about it before their replacement starts
            if job is None:
                continue
            try:
                self._run(job)
            except BaseException:  # a bug here must not take the thread down
                log.exception("worker: internal error while running job %r", job.name)
                job._done.set()
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def _deliver_notices(self) -> None:
        """Call on_cancelled for jobs cancelled while queued (on this, the worker, thread)."""
        while True:
            with self._cond:
                if not self._notices:
                    return
                job = self._notices[0]
            self._call(job, "on_cancelled", job.on_cancelled)
            job._done.set()
            with self._cond:
                self._notices.popleft()
                self._cond.notify_all()

    def _run(self, job: Job) -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            if job._cancel.is_set():
                raise JobCancelled("cancelled before start")
            self._call(job, "on_start", job.on_start)
            out = job.fn(*job.args, **_with_cancel_kwarg(job.fn, job.args, job.kwargs, job._cancel.is_set))
            if inspect.isgenerator(out):
                out = _drive(out, lambda value: self._call(job, "on_progress", job.on_progress, value),
                             job._cancel.is_set, between=self._deliver_notices)
            result = out
        except BaseException as exc:  # the job's own error, whatever it is, is reported, not fatal
            error = exc
        self._finish(job, result, error)

    def _finish(self, job: Job, result: Any, error: BaseException | None) -> None:
        """Decide the outcome under the lock (so it cannot race `cancel`), then call back."""
        with self._cond:
            if isinstance(error, JobCancelled) or job._cancel.is_set():
                if error is not None and not isinstance(error, JobCancelled):
                    log.info("job %r raised after cancellation; ignored", job.name,
                             exc_info=(type(error), error, error.__traceback__))
                job.state = JobState.CANCELLED
            elif error is not None:
                job.state = JobState.FAILED
                job.error = error
                job.traceback = "".join(_traceback.format_exception(type(error), error, error.__traceback__))
            else:
                job.state = JobState.DONE
                job.result = result
            job.finished_at = time.perf_counter()
        if job.state is JobState.DONE:
            self._call(job, "on_result", job.on_result, result)
        elif job.state is JobState.FAILED:
            log.debug("job %r failed:\n%s", job.name, job.traceback)
            self._call(job, "on_error", job.on_error, error)
        else:
            self._call(job, "on_cancelled", job.on_cancelled)
        job._done.set()

    @staticmethod
    def _call(job: Job, what: str, callback: Callable[..., object] | None, *args: Any) -> None:
        """Run a user callback; its exception is logged, never allowed to kill the worker."""
        if callback is None:
            return
        try:
            callback(*args)
        except BaseException:
            log.exception("%s callback of job %r raised; the worker carries on", what, job.name)


def run_inline(fn: Callable[..., Any], /, *args: Any,
               on_progress: Callable[[Any], object] | None = None, **kwargs: Any) -> Any:
    """Run a job synchronously in the calling thread (the command-line path) and return its result.

    A generator's yields go to `on_progress` and its return value is returned; a plain
    function's return value is returned. Exceptions (including from `on_progress`) propagate,
    and the generator is closed so its ``finally`` blocks run. A ``cancelled`` parameter, if the
    job has one, receives a callable that always returns False.
    """
    out = fn(*args, **_with_cancel_kwarg(fn, args, kwargs, lambda: False))
    if inspect.isgenerator(out):
        return _drive(out, on_progress, lambda: False)
    return out
