from __future__ import annotations

import threading
import time

import pytest

from tulu.verifiers import base
from tulu.verifiers.timeout import VerifierTimeout, WorkerPool, run_with_timeout, time_limit

import verifier_timeout_helpers as h


def test_time_limit_interrupts_python_loop() -> None:
    t0 = time.monotonic()
    with pytest.raises(VerifierTimeout):
        with time_limit(0.2):
            h.busy(5)
    assert time.monotonic() - t0 < 1.0


def test_time_limit_not_swallowed_by_except_exception() -> None:
    t0 = time.monotonic()
    with pytest.raises(VerifierTimeout):
        with time_limit(0.2):
            h.swallowing_loop(5)
    assert time.monotonic() - t0 < 1.0


def test_time_limit_passes_through_fast_code_and_disarms() -> None:
    with time_limit(0.2):
        x = h.add(1, 2)
    assert x == 3
    time.sleep(0.35)  # a leftover timer would raise here


def test_nested_limits_inner_never_extends_outer() -> None:
    t0 = time.monotonic()
    with pytest.raises(VerifierTimeout):
        with time_limit(0.2):
            with time_limit(5):
                h.busy(5)
    assert time.monotonic() - t0 < 1.0


def test_nested_limits_outer_rearmed_after_inner() -> None:
    t0 = time.monotonic()
    with pytest.raises(VerifierTimeout):
        with time_limit(0.4):
            with time_limit(0.1):
                h.add(1)
            h.busy(5)  # the outer limit must still fire
    assert 0.3 < time.monotonic() - t0 < 1.2


def test_run_with_timeout_from_thread_uses_worker_process() -> None:
    out: dict[str, object] = {}

    def target() -> None:
        out["value"] = run_with_timeout(h.add, 2, b=3, timeout_s=5)
        try:
            run_with_timeout(h.busy, 10, timeout_s=0.3)
        except VerifierTimeout:
            out["timeout"] = True

    th = threading.Thread(target=target)
    th.start()
    th.join(30)
    assert out == {"value": 5, "timeout": True}


def test_pool_hard_limit_kills_stalled_worker_and_batch_goes_on() -> None:
    with WorkerPool(2) as pool:
        t0 = time.monotonic()
        tasks = [((0.0,), {}), ((30.0,), {}), ((0.0,), {}), ((0.0,), {})]
        res = pool.map(h.c_level_stall, tasks, timeout_s=0.3)
        elapsed = time.monotonic() - t0
        assert [r.status for r in res] == ["ok", "timeout", "ok", "ok"]
        assert "killed" in res[1].error
        assert elapsed < 10
        # the replaced worker serves new work
        res2 = pool.map(h.add, [((i,), {"b": 1}) for i in range(5)], timeout_s=2)
        assert [r.value for r in res2] == [1, 2, 3, 4, 5]


def test_pool_soft_timeout_error_and_dead_worker() -> None:
    with WorkerPool(1) as pool:
        res = pool.map(h.busy, [((10.0,), {})], timeout_s=0.2)
        assert res[0].status == "timeout" and "killed" not in res[0].error
        res = pool.map(h.boom, [(("bad",), {})], timeout_s=2)
        assert res[0].status == "error" and "ValueError: bad" in res[0].error
        res = pool.map(h.die, [((), {})], timeout_s=2)
        assert res[0].status == "error" and "died" in res[0].error
        assert pool.map(h.add, [((1,), {})], 2)[0].value == 1


def _slow_verifier(response: str, ground_truth: object, **kw: object) -> base.VerifyResult:
    h.busy(float(response))
    return base.VerifyResult(1.0, "slow but right")


def test_verify_turns_timeout_into_zero_score() -> None:
    base.register("_test_slow", timeout_s=0.2)(_slow_verifier)
    try:
        r = base.verify("_test_slow", "5", None)
        assert r.score == 0.0 and r.reason.startswith("timeout")
        assert base.verify("_test_slow", "0", None).score == 1.0
        assert base.verify("_test_slow", "0.5", None, timeout_s=2).score == 1.0
    finally:
        base._REGISTRY.pop("_test_slow")
        base._TIMEOUTS.pop("_test_slow")
