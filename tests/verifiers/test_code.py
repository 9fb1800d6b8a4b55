from __future__ import annotations

import math
import os
import time
from itertools import combinations

import pytest

from tulu.verifiers.base import verify
from tulu.verifiers.code import (
    SandboxLimits,
    extract_code,
    pass_at_k,
    run_tests,
    sandbox_report,
    parse_code_ground_truth,
)

FAST = SandboxLimits(timeout_s=4, per_test_s=2, memory_mb=256, max_procs=8)


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    # Probability that a random k-subset of n samples (c correct) contains a correct one: enumerate subsets.
    samples = [True] * c + [False] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n,c,k", [(5, 0, 1), (5, 1, 1), (5, 2, 3), (6, 3, 2), (8, 7, 5), (4, 4, 4), (10, 3, 10)])
def test_pass_at_k_matches_definition(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k))
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_edges_and_errors() -> None:
    assert pass_at_k(20, 0, 10) == 0.0
    assert pass_at_k(20, 11, 10) == 1.0
    assert pass_at_k(200, 13, 1) == pytest.approx(13 / 200)
    for bad in [(5, 6, 1), (5, 1, 0), (5, 1, 6)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)


def test_per_test_pass_fail_and_exit_hacks() -> None:
    r = run_tests("def f(x):\n    return x + 1\n", ["assert f(1) == 2", "assert f(2) == 4", "assert f(0) == 1"], FAST)
    assert [t.passed for t in r.tests] == [True, False, True]
    assert "AssertionError" in r.tests[1].error
    # a solution that exits early must not pass its tests
    for prog in ("import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "raise SystemExit(0)\n"):
        r = run_tests(prog, ["assert False", "pass"], FAST)
        assert [t.passed for t in r.tests] == [False, False], prog
    # printing something that looks like a result line does not help either
    r = run_tests('print("\\n" + "0" * 32 + "[[true, \\"\\"]]")\n', ["assert False"], FAST)
    assert [t.passed for t in r.tests] == [False]


def test_verifier_registry_and_ground_truth_forms() -> None:
    gt = {"tests": ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"]}
    resp = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\n"
    assert verify("code", resp, gt).score == 1.0
    assert verify("code", resp.replace("a + b", "a - b"), gt).score == 0.0
    assert verify("code", resp.replace("a + b", "a * b if a > 0 else a + b"), gt, partial=True).score == 0.5
    he = {"test": "def check(candidate):\n    assert candidate(3) == 9\n", "entry_point": "sq",
          "setup": "def sq(x):\n"}
    assert verify("code", "    return x * x\n", he).score == 1.0
    assert extract_code("a\n```py\nx=1\n```\nb\n```python\nx=2\n```") == "x=2\n"
    with pytest.raises(ValueError, match="tests"):
        parse_code_ground_truth({"nope": 1})


# ------------------------------------------------------------------------------------ hostile programs

def _parent_alive_after(prog: str, limits: SandboxLimits = FAST, max_s: float = 15) -> tuple:
    t0 = time.monotonic()
    r = run_tests(prog, ["pass"], limits)
    elapsed = time.monotonic() - t0
    assert elapsed < max_s
    os.kill(os.getpid(), 0)  # still here
    return r, elapsed


def test_infinite_loop_is_stopped() -> None:
    r, elapsed = _parent_alive_after("while True:\n    pass\n", SandboxLimits(timeout_s=1.5, per_test_s=1))
    assert not r.tests[0].passed
    assert elapsed < 6


def test_memory_hog_is_contained() -> None:
    r, _ = _parent_alive_after("x = bytearray(2 * 1024 ** 3)\n")
    assert not r.tests[0].passed and "MemoryError" in r.tests[0].error


def test_deep_recursion_is_contained() -> None:
    r, _ = _parent_alive_after("import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)\n")
    assert not r.tests[0].passed


def test_fork_bomb_is_contained() -> None:
    prog = ("import os\n"
            "for _ in range(200):\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        pass\n"
            "import time\ntime.sleep(30)\n")
    r, elapsed = _parent_alive_after(prog, SandboxLimits(timeout_s=2, per_test_s=1, max_procs=8))
    assert not r.tests[0].passed
    assert elapsed < 10
    if sandbox_report()["private_uid"]:  # every process of the run's private uid is gone
        from tulu.verifiers import code

        uid = code._UID_BASE + (os.getpid() * 1000 + code._counter) % 1_000_000
        assert code._pids_of_uid(uid) == []


def test_write_outside_scratch_fails(tmp_path) -> None:
    target = tmp_path / "pwned.txt"
    prog = f"open({str(target)!r}, 'w').write('x')\n"
    r, _ = _parent_alive_after(prog)
    if not sandbox_report()["private_uid"]:
        pytest.skip("not root: no private uid, so the file system is only protected by cwd")
    assert not target.exists()
    assert "PermissionError" in r.tests[0].error
    # writing inside the scratch dir is fine
    r = run_tests("open('ok.txt', 'w').write('x')\nassert open('ok.txt').read() == 'x'\n", ["pass"], FAST)
    assert r.tests[0].passed


def test_socket_cannot_reach_network() -> None:
    prog = ("import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
            "s.settimeout(2)\n"
            "s.connect(('1.1.1.1', 80))\n")
    r, _ = _parent_alive_after(prog)
    if not sandbox_report()["network_namespace"]:
        pytest.skip("no network namespace available on this machine")
    assert not r.tests[0].passed
    assert "OSError" in r.tests[0].error or "Error" in r.tests[0].error.split(":")[0]


def test_kill_parent_is_refused() -> None:
    if not sandbox_report()["private_uid"]:
        pytest.skip("not root: the child runs under our uid and could signal us; documented")
    prog = f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)\n"
    r, _ = _parent_alive_after(prog)
    assert "PermissionError" in r.tests[0].error


def test_gigantic_output_is_capped() -> None:
    r, _ = _parent_alive_after("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
                               SandboxLimits(timeout_s=4, max_file_mb=2))
    assert not r.tests[0].passed
    assert len(r.stdout) <= FAST.output_bytes
