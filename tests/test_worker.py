"""The background worker with real threads: ordering, cancellation, coalescing, errors, shutdown.

Synchronisation is by threading.Event; the timeouts are only upper bounds on a loaded machine.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator

import pytest

from core.worker import Job, JobCancelled, JobHandle, JobState, Worker, run_inline

T = 30.0  # upper bound for every wait, generous for a busy machine; tests finish as soon as the event fires


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    assert w.shutdown(timeout=T)


def _blocker(started: threading.Event, release: threading.Event) -> str:
    """Holds the worker thread until the test lets go, so other jobs stay queued."""
    started.set()
    assert release.wait(T)
    return "released"


def _hold(worker: Worker) -> tuple[JobHandle, threading.Event]:
    started, release = threading.Event(), threading.Event()
    handle = worker.submit(_blocker, started, release, name="blocker")
    assert started.wait(T)
    return handle, release


def test_progress_in_order_and_result(worker: Worker) -> None:
    def count(n: int, scale: int = 1):
        for i in range(n):
            yield i * scale
        return "finished"

    progress: list[int] = []
    results: list[str] = []
    started = threading.Event()
    t0 = time.perf_counter()
    h = worker.submit(count, 5, scale=10, on_progress=progress.append, on_result=results.append,
                      on_start=started.set)
    assert h.result(timeout=T) == "finished"
    waited = time.perf_counter() - t0
    assert started.is_set()
    assert progress == [0, 10, 20, 30, 40]
    assert results == ["finished"]  # on_result has returned by the time wait/result returns
    assert h.state is JobState.DONE and h.done() and not h.cancelled()
    assert h.name.endswith("count")
    assert h.elapsed_s is not None and 0 <= h.elapsed_s <= waited  # measured within the wait, however slow


def test_plain_function_result_and_job_dataclass(worker: Worker) -> None:
    h = worker.submit(lambda a, b: a + b, 2, b=3, name="add")
    assert h.result(timeout=T) == 5
    assert (h.name, h.state) == ("add", JobState.DONE)
    assert isinstance(h.job, Job) and h.job.id == h.id
    h2 = worker.submit(functools.partial(pow, 2), 10)
    assert h2.result(timeout=T) == 1024 and h2.name == "pow"
    assert h2.id > h.id


def test_cancel_running_generator_stops_within_one_step_and_runs_finally(worker: Worker) -> None:
    in_step, release = threading.Event(), threading.Event()
    finally_ran, cancelled_cb = threading.Event(), threading.Event()
    steps: list[int] = []
    progress: list[int] = []

    def job():
        try:
            for i in range(1000):
                steps.append(i)
                if i == 2:
                    in_step.set()  # the test cancels while this step is "computing"
                    assert release.wait(T)
                yield i
        finally:
            finally_ran.set()

    h = worker.submit(job, on_progress=progress.append, on_cancelled=cancelled_cb.set)
    assert in_step.wait(T)
    assert h.cancel() is True
    release.set()
    with pytest.raises(JobCancelled):
        h.result(timeout=T)
    assert finally_ran.is_set() and cancelled_cb.is_set()
    assert steps == [0, 1, 2]  # the step in flight finished; the generator was never resumed
    assert progress == [0, 1]  # the value yielded after the cancel is stale and not reported
    assert h.state is JobState.CANCELLED and h.cancelled()
    assert h.cancel() is False  # already finished


def test_cancel_during_progress_callback_never_resumes_generator(worker: Worker) -> None:
    holder: list[JobHandle] = []
    ready = threading.Event()
    resumed: list[int] = []

    def job():
        for i in range(100):
            resumed.append(i)
            yield i

    def on_progress(value: int) -> None:
        assert ready.wait(T)
        if value == 1:
            holder[0].cancel()

    holder.append(worker.submit(job, on_progress=on_progress))
    ready.set()
    with pytest.raises(JobCancelled):
        holder[0].result(timeout=T)
    assert resumed == [0, 1]


def test_job_can_poll_cancelled_inside_a_long_step(worker: Worker) -> None:
    started = threading.Event()
    polls: list[bool] = []

    def optimise(steps: int, *, cancelled) -> str:
        started.set()
        deadline = time.monotonic() + T
        while not cancelled() and time.monotonic() < deadline:
            polls.append(False)
            time.sleep(0.001)
        return "stopped early"

    h = worker.submit(optimise, 10)
    assert started.wait(T)
    h.cancel()
    with pytest.raises(JobCancelled):  # a result produced after cancel is discarded as stale
        h.result(timeout=T)
    assert h.state is JobState.CANCELLED

    # The keyword is optional: jobs without it are called normally, and an explicit value wins.
    flag_seen: list[bool] = []
    h2 = worker.submit(lambda cancelled: flag_seen.append(cancelled()) or "ok")
    assert h2.result(timeout=T) == "ok" and flag_seen == [False]
    assert worker.submit(lambda cancelled: cancelled, cancelled="mine").result(timeout=T) == "mine"


def test_job_raising_jobcancelled_ends_cancelled(worker: Worker) -> None:
    def gives_up():
        yield 1
        raise JobCancelled("nothing to do")

    seen = threading.Event()
    h = worker.submit(gives_up, on_cancelled=seen.set)
    with pytest.raises(JobCancelled):
        h.result(timeout=T)
    assert seen.is_set()


def test_cancel_queued_job_never_starts(worker: Worker) -> None:
    blocker, release = _hold(worker)
    ran: list[str] = []
    cancelled: list[threading.Thread] = []
    started: list[str] = []
    h = worker.submit(lambda: ran.append("ran"), on_start=lambda: started.append("start"),
                      on_cancelled=lambda: cancelled.append(threading.current_thread()))
    assert h.state is JobState.QUEUED and worker.pending() == 1
    assert h.cancel() is True
    assert h.state is JobState.CANCELLED  # immediately, even while the worker is busy
    assert worker.pending() == 0
    release.set()
    with pytest.raises(JobCancelled):
        h.result(timeout=T)
    assert blocker.result(timeout=T) == "released"
    assert worker.wait_idle(T)
    assert ran == [] and started == []
    assert cancelled == [worker.thread]  # callbacks are delivered on the worker thread
    assert h.elapsed_s is None  # it never started


def test_failing_job_reports_error_and_next_job_runs(worker: Worker) -> None:
    def broken():
        yield "step"
        raise ValueError("bad latent")

    errors: list[BaseException] = []
    h = worker.submit(broken, on_error=errors.append, on_result=lambda r: pytest.fail("no result"))
    with pytest.raises(ValueError, match="bad latent"):
        h.result(timeout=T)
    assert h.state is JobState.FAILED
    assert len(errors) == 1 and errors[0] is h.error
    assert errors[0].__traceback__ is not None
    assert h.traceback is not None and "broken" in h.traceback and "ValueError: bad latent" in h.traceback

    h_plain = worker.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        h_plain.result(timeout=T)

    assert worker.submit(lambda: "still alive").result(timeout=T) == "still alive"
    assert worker.thread.is_alive()


def test_failing_callbacks_are_logged_and_do_not_kill_worker(worker: Worker, caplog: pytest.LogCaptureFixture) -> None:
    def gen():
        yield 1
        yield 2
        return 3

    def boom(*_: object) -> None:
        raise RuntimeError("callback bug")

    progress: list[int] = []

    def progress_then_boom(v: int) -> None:
        progress.append(v)
        boom()

    with caplog.at_level(logging.ERROR, logger="core.worker"):
        h = worker.submit(gen, on_start=boom, on_progress=progress_then_boom, on_result=boom)
        assert h.result(timeout=T) == 3  # the job itself is unaffected
        h_err = worker.submit(lambda: 1 / 0, on_error=boom)
        with pytest.raises(ZeroDivisionError):
            h_err.result(timeout=T)
        blocker, release = _hold(worker)
        h_cancel = worker.submit(lambda: None, on_cancelled=boom)
        h_cancel.cancel()
        release.set()
        assert worker.wait_idle(T)
    assert progress == [1, 2]
    messages = [r.getMessage() for r in caplog.records]
    for what in ("on_start", "on_progress", "on_result", "on_error", "on_cancelled"):
        assert any(what in m for m in messages), what
    assert all(r.exc_info and "callback bug" in str(r.exc_info[1]) for r in caplog.records)
    assert worker.submit(lambda: "ok").result(timeout=T) == "ok"


def test_every_submitted_job_runs_in_order(worker: Worker) -> None:
    """The worker drops nothing by itself: coalescing stale requests is the bridge's one job
    (ui.bridge.Bridge.request), so a CLI or test that submits five jobs gets five results."""
    blocker, release = _hold(worker)
    ran: list[int] = []
    handles = [worker.submit(ran.append, v) for v in range(5)]
    assert worker.pending() == 5 and all(h.state is JobState.QUEUED for h in handles)
    release.set()
    for h in handles:
        h.result(timeout=T)
    assert blocker.result(timeout=T) == "released"
    assert ran == [0, 1, 2, 3, 4]
    failed = worker.submit(ran.append, 9, key="slider")  # no hidden keyword: `key` reaches the function
    with pytest.raises(TypeError):
        failed.result(timeout=T)
    assert failed.state is JobState.FAILED and ran == [0, 1, 2, 3, 4]


def test_result_timeout_and_wait(worker: Worker) -> None:
    blocker, release = _hold(worker)
    h = worker.submit(lambda: "later")
    with pytest.raises(TimeoutError):
        h.result(timeout=0.01)
    assert h.wait(0.01) is False and not h.done()
    assert blocker.elapsed_s is not None and blocker.state is JobState.RUNNING
    release.set()
    assert h.wait(T) is True and h.result() == "later"


def test_blocking_on_the_worker_thread_raises_instead_of_deadlocking(worker: Worker) -> None:
    errors: list[BaseException] = []
    later: list[JobHandle] = []
    blocker, release = _hold(worker)

    def waits_on_later_job() -> None:  # the later job can only run after this one returns
        for block in (lambda: later[0].result(), lambda: later[0].wait(1.0), lambda: worker.wait_idle()):
            try:
                block()
            except RuntimeError as exc:
                errors.append(exc)

    worker.submit(waits_on_later_job)
    later.append(worker.submit(lambda: "later"))
    release.set()
    assert later[0].result(timeout=T) == "later"
    assert worker.wait_idle(T)
    assert len(errors) == 3 and all("deadlock" in str(e) for e in errors)


def test_all_jobs_and_callbacks_run_on_one_non_main_thread(worker: Worker) -> None:
    seen: set[int] = set()
    lock = threading.Lock()

    def note(*_: object) -> None:
        with lock:
            seen.add(threading.get_ident())

    def gen(i: int):
        note()
        yield i
        return i

    before = threading.active_count()
    handles = [worker.submit(gen if i % 2 else (lambda i: note() or i), i, on_start=note,
                             on_progress=note, on_result=note) for i in range(20)]
    assert [h.result(timeout=T) for h in handles] == list(range(20))
    assert threading.active_count() == before  # no thread per job
    assert seen == {worker.thread.ident}
    assert worker.thread.ident != threading.main_thread().ident
    assert worker.thread.daemon
    assert worker.idle() and worker.pending() == 0


def test_shutdown_cancels_queue_and_running_stops_thread() -> None:
    w = Worker()
    running, finally_ran = threading.Event(), threading.Event()
    cancelled: list[str] = []

    def long():
        try:
            while True:
                running.set()
                time.sleep(0.001)
                yield
        finally:
            finally_ran.set()

    h_run = w.submit(long, on_cancelled=lambda: cancelled.append("running"))
    assert running.wait(T)
    h_queued = w.submit(lambda: pytest.fail("must not start"), on_cancelled=lambda: cancelled.append("queued"))
    assert w.shutdown(timeout=T) is True
    assert not w.thread.is_alive() and w.closed
    assert finally_ran.is_set()
    assert h_run.state is JobState.CANCELLED and h_queued.state is JobState.CANCELLED
    assert sorted(cancelled) == ["queued", "running"]
    with pytest.raises(RuntimeError, match="shut down"):
        w.submit(lambda: None)
    assert w.shutdown() is True  # idempotent


def test_shutdown_without_cancel_lets_running_job_finish() -> None:
    w = Worker()
    started, release = threading.Event(), threading.Event()
    h = w.submit(_blocker, started, release)
    assert started.wait(T)
    queued = w.submit(lambda: "never")
    release.set()
    assert w.shutdown(cancel=False, timeout=T) is True
    assert h.result() == "released"
    assert queued.state is JobState.CANCELLED


def test_context_manager_shuts_down() -> None:
    with Worker(name="ctx-worker") as w:
        assert w.submit(lambda: 7).result(timeout=T) == 7
        assert w.thread.name == "ctx-worker"
    assert not w.thread.is_alive()
    with pytest.raises(RuntimeError):
        w.submit(lambda: None)


def test_run_inline_generator_and_plain() -> None:
    closed = []

    def gen(n: int, *, offset: int = 0, cancelled):
        assert cancelled() is False
        try:
            for i in range(n):
                assert threading.current_thread() is threading.main_thread()
                yield i + offset
        finally:
            closed.append(True)
        return "value"

    progress: list[int] = []
    assert run_inline(gen, 3, offset=1, on_progress=progress.append) == "value"
    assert progress == [1, 2, 3] and closed == [True]
    assert run_inline(lambda a, b=0: a * b, 6, b=7) == 42

    def stop(_: int) -> None:
        raise KeyboardInterrupt  # e.g. Ctrl-C in the command-line interface
    with pytest.raises(KeyboardInterrupt):
        run_inline(gen, 3, on_progress=stop)
    assert closed == [True, True]  # the generator was closed, its finally ran

    def failing():
        yield 1
        raise ValueError("inline failure")
    with pytest.raises(ValueError, match="inline failure"):
        run_inline(failing)
