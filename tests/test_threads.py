"""The CPU thread policy: cores − 1 (at least 1), overridable; the engine's worker runs with it."""
from __future__ import annotations

import pytest
import torch

from core.engine import Engine
from core.threads import ENV_VAR, apply_thread_policy, available_cores, policy_threads


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, expected", [(1, 1), (2, 1), (4, 3), (16, 15)])
def test_policy_leaves_one_core_free_and_uses_at_least_one(cores, expected):
    assert policy_threads(cores=cores, env={}) == expected


def test_policy_default_counts_this_process_cores():
    assert available_cores() >= 1
    assert policy_threads(env={}) == max(1, available_cores() - 1)


def test_environment_variable_and_argument_override_the_policy():
    assert policy_threads(cores=2, env={ENV_VAR: "2"}) == 2
    assert policy_threads(cores=16, env={ENV_VAR: " 4 "}) == 4
    assert policy_threads(3, cores=16, env={ENV_VAR: "4"}) == 3  # an explicit argument wins
    assert policy_threads(cores=8, env={ENV_VAR: ""}) == 7  # empty = unset
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(ValueError, match=ENV_VAR):
            policy_threads(cores=2, env={ENV_VAR: bad})
    with pytest.raises(ValueError, match="at least 1"):
        policy_threads(0)


def test_omp_num_threads_is_honoured_after_our_own_variable():
    assert policy_threads(cores=16, env={"OMP_NUM_THREADS": "4"}) == 4
    assert policy_threads(cores=16, env={"OMP_NUM_THREADS": "4", ENV_VAR: "2"}) == 2
    assert policy_threads(cores=16, env={"OMP_NUM_THREADS": "0"}) == 15  # unusable: the policy decides
    assert policy_threads(cores=16, env={"OMP_NUM_THREADS": "lots"}) == 15


def test_apply_sets_torch_threads(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "2")
    assert apply_thread_policy() == 2 and torch.get_num_threads() == 2
    assert apply_thread_policy(1) == 1 and torch.get_num_threads() == 1


def test_engine_worker_runs_model_work_with_the_policy_thread_count(tiny_models, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    torch.set_num_threads(max(2, available_cores()))  # as torch's own default would be
    engine = Engine(tiny_models, device="cpu", directions_cache=tmp_path)
    try:
        assert engine.threads == policy_threads() and torch.get_num_threads() == engine.threads
        assert engine.device_name == f"CPU ({engine.threads} threads)"
        seen = engine.submit(torch.get_num_threads).result(timeout=30)  # asked on the worker thread
        assert seen == engine.threads
    finally:
        engine.close()
    explicit = Engine(tiny_models, device="cpu", directions_cache=tmp_path, start_worker=False, threads=2)
    assert explicit.threads == 2 and torch.get_num_threads() == 2
