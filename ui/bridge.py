"""The one place where the engine's worker thread meets Qt.

`Bridge.submit` hands a job to `Engine.submit`; the worker's callbacks (which run on the worker
thread) only post an event to the bridge through a queued signal, and the bridge, on the GUI
thread, turns each into a signal of the job's `Task`. So every result, progress event, error and
cancellation is handled on the GUI thread, where widgets may be touched.

* Progress is coalesced: while the GUI has not yet taken the last progress event of a task, a
  newer one replaces it (notices are never dropped), so a fast job cannot flood the event queue.
* `request(key, ...)` coalesces repeated requests, for sliders and drags: while a job with that
  key is queued or running, a new request only replaces the one waiting behind it, and is
  submitted when the running one ends. The first request starts at once (no timer latency), the
  face follows the slider as fast as the model can render, and stale values are skipped.
* Long jobs (`long=True`) feed the status bar's progress bar and its Cancel button.

This is the one coalescing mechanism (the worker runs every job it is given), and a `Task`'s
state is the worker's `core.worker.JobState`: one lifecycle vocabulary from worker to window.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from core.engine import Engine, Notice, Progress
from core.worker import JobHandle, JobState

_PROGRESS, _RESULT, _ERROR, _CANCELLED = "progress", "result", "error", "cancelled"


class Task(QObject):
    """A submitted job as seen from the GUI thread. Its signals are emitted on the GUI thread."""

    progress = Signal(object)  # Progress or Notice (the latest one; intermediate ones may be skipped)
    succeeded = Signal(object)
    failed = Signal(object)  # the exception
    cancelled = Signal()
    finished = Signal(str)  # the final JobState's value: "done" | "failed" | "cancelled"

    def __init__(self, name: str, key: Hashable | None, long: bool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.key = key
        self.long = long
        self.handle: JobHandle | None = None
        self.state = JobState.QUEUED  # the worker's lifecycle, as the GUI thread has heard it
        self.error: BaseException | None = None
        self.result: Any = None
        self.elapsed_ms: float | None = None
        self.last_progress: Any = None
        self._latest: Any = None
        self._progress_posted = False

    @property
    def done(self) -> bool:
        return self.state.finished

    def cancel(self) -> bool:
        return self.handle.cancel() if self.handle is not None and not self.done else False

    def __repr__(self) -> str:
        return f"<Task {self.name!r} {self.state.value}>"


class Bridge(QObject):
    """Submits jobs to the engine's worker and delivers their callbacks as GUI-thread signals."""

    # (task, kind, payload) as ONE tuple: it crosses threads through a queued connection, and a
    # bare None argument there corrupts None's reference count in PySide6 ("deallocating None").
    _posted = Signal(object)

    task_started = Signal(object)  # Task (GUI-side: right after submission)
    task_finished = Signal(object)  # Task, whatever its outcome
    busy_changed = Signal(bool)
    long_changed = Signal(object)  # the newest running long Task, or None when none is left
    long_progress = Signal(int, int, str)  # step, total, message of the newest long task
    notice = Signal(str)  # a Notice from any job (fell back to CPU, no face found, ...)

    def __init__(self, engine: Engine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self._lock = threading.Lock()
        self._active: list[Task] = []
        self._by_key: dict[Hashable, Task] = {}
        self._pending: dict[Hashable, tuple[Callable[..., Any], tuple, dict]] = {}
        self._closed = False
        self.submitted: Counter[str] = Counter()  # by key (or name), for tests and diagnostics
        self.max_handler_ms = 0.0  # longest time one delivery took on the GUI thread
        self._posted.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    # ------------------------------------------------------------------ submitting
    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, fn: Callable[..., Any], *args: Any, name: str | None = None, key: Hashable | None = None,
               long: bool = False, on_progress: Callable[[Any], object] | None = None,
               on_result: Callable[[Any], object] | None = None,
               on_error: Callable[[BaseException], object] | None = None,
               on_cancelled: Callable[[], object] | None = None,
               on_finished: Callable[[str], object] | None = None, **kwargs: Any) -> Task:
        """Run `fn(*args, **kwargs)` on the engine's worker; the callbacks run on the GUI thread."""
        if self._closed:
            raise RuntimeError("the window is closing; no new jobs")
        name = name or getattr(fn, "__name__", "job")
        task = Task(name, key, long, self)
        for signal, slot in ((task.progress, on_progress), (task.succeeded, on_result), (task.failed, on_error),
                             (task.cancelled, on_cancelled), (task.finished, on_finished)):
            if slot is not None:
                signal.connect(slot)
        was_busy = bool(self._active)
        self._active.append(task)
        if key is not None:
            self._by_key[key] = task
        self.submitted[str(key if key is not None else name)] += 1
        task.handle = self.engine.submit(
            fn, *args, name=name,
            on_start=lambda: self._post(task, "start", None),
            on_progress=lambda value: self._post_progress(task, value),
            on_result=lambda value: self._post(task, _RESULT, value),
            on_error=lambda exc: self._post(task, _ERROR, exc),
            on_cancelled=lambda: self._post(task, _CANCELLED, None),
            **kwargs)
        self.task_started.emit(task)
        if long:
            self.long_changed.emit(task)
        if not was_busy:
            self.busy_changed.emit(True)
        return task

    def request(self, key: Hashable, fn: Callable[..., Any], *args: Any, **options: Any) -> Task | None:
        """Coalesced submit: at most one job per key in flight and one waiting (the newest)."""
        running = self._by_key.get(key)
        if running is not None and not running.done:
            self._pending[key] = (fn, args, options)
            return None
        self._pending.pop(key, None)
        return self.submit(fn, *args, key=key, **options)

    def task(self, key: Hashable) -> Task | None:
        task = self._by_key.get(key)
        return task if task is not None and not task.done else None

    def has_pending(self, key: Hashable) -> bool:
        return key in self._pending or self.task(key) is not None

    def cancel_key(self, key: Hashable) -> None:
        """Forget the waiting request for `key` and cancel its running job."""
        self._pending.pop(key, None)
        task = self.task(key)
        if task is not None:
            task.cancel()

    def long_tasks(self) -> list[Task]:
        return [t for t in self._active if t.long]

    def cancel_long(self) -> None:
        for task in self.long_tasks():
            task.cancel()

    def idle(self) -> bool:
        """Nothing running, queued, waiting or undelivered."""
        return not self._active and not self._pending

    # ------------------------------------------------------------------ worker thread side
    def _post(self, task: Task, kind: str, payload: Any) -> None:
        if self._closed:
            return
        try:
            self._posted.emit((task, kind, payload))
        except RuntimeError:  # the bridge was deleted while the worker was finishing
            pass

    def _post_progress(self, task: Task, value: Any) -> None:
        if isinstance(value, Notice):
            self._post(task, "notice", value)
            return
        with self._lock:
            task._latest = value
            if task._progress_posted:
                return
            task._progress_posted = True
        self._post(task, _PROGRESS, None)

    # ------------------------------------------------------------------ GUI thread side
    @Slot(object)
    def _deliver(self, event: tuple[Task, str, Any]) -> None:
        if self._closed:
            return
        task, kind, payload = event
        t0 = time.perf_counter()
        try:
            self._dispatch(task, kind, payload)
        finally:
            self.max_handler_ms = max(self.max_handler_ms, 1000 * (time.perf_counter() - t0))

    def _dispatch(self, task: Task, kind: str, payload: Any) -> None:
        if kind == "start":
            if task.state is JobState.QUEUED:
                task.state = JobState.RUNNING
            return
        if kind == "notice":
            self.notice.emit(payload.text)
            task.progress.emit(payload)
            return
        if kind == _PROGRESS:
            with self._lock:
                value, task._latest, task._progress_posted = task._latest, None, False
            if value is None or task.done:
                return
            task.last_progress = value
            if task.long and isinstance(value, Progress) and task is self._newest_long():
                self.long_progress.emit(value.step, value.total, value.message)
            task.progress.emit(value)
            return
        # final event
        elapsed = task.handle.elapsed_s if task.handle is not None else None
        task.elapsed_ms = 1000 * elapsed if elapsed is not None else 0.0
        if task in self._active:
            self._active.remove(task)
        if task.key is not None and self._by_key.get(task.key) is task:
            del self._by_key[task.key]
        try:
            if kind == _RESULT:
                task.state, task.result = JobState.DONE, payload
                task.succeeded.emit(payload)
            elif kind == _ERROR:
                task.state, task.error = JobState.FAILED, payload
                task.failed.emit(payload)
            else:
                task.state = JobState.CANCELLED
                task.cancelled.emit()
            task.finished.emit(task.state.value)
        finally:
            self.task_finished.emit(task)
            if task.long:
                self.long_changed.emit(self._newest_long())
            if task.key is not None and task.key in self._pending and not self._closed:
                fn, args, options = self._pending.pop(task.key)
                self.submit(fn, *args, key=task.key, **options)
            if not self._active:
                self.busy_changed.emit(False)
            task.deleteLater()

    def _newest_long(self) -> Task | None:
        longs = self.long_tasks()
        return longs[-1] if longs else None

    # ------------------------------------------------------------------ closing
    def shutdown(self, timeout: float = 5.0) -> bool:
        """Cancel everything, stop the engine's worker (joins it) and deliver nothing more."""
        if self._closed:
            return True
        self._pending.clear()
        for task in list(self._active):
            task.cancel()
        self._closed = True
        stopped = self.engine.close(timeout)
        for task in self._active:
            if task.handle is not None and task.handle.state.finished:
                task.state = task.handle.state
        return stopped
