"""Code verifier: run a model-written Python program against tests in a sandboxed child process.

Untrusted code never runs in this process. ``run_tests`` writes the program and its tests into a fresh
scratch directory and starts a separate interpreter there, under these limits:

======================  ==========================================================================
limit                   how (where it is enforced)
======================  ==========================================================================
CPU time                ``RLIMIT_CPU`` (kernel: SIGXCPU, then SIGKILL)
wall time               parent waits ``timeout_s`` then SIGKILLs every process of the run
memory                  ``RLIMIT_AS`` (address space; allocation fails with MemoryError)
processes               ``RLIMIT_NPROC``; as root the run gets its own throw-away uid, so the count is
                        the run's own processes; without root the limit applies to the user's whole
                        process count, which in practice forbids any fork
file size / output      ``RLIMIT_FSIZE`` (SIGXFSZ); stdout/stderr go to size-capped files, never pipes
open files              ``RLIMIT_NOFILE``; core dumps off (``RLIMIT_CORE`` 0)
file system             cwd = scratch dir; as root the throw-away uid owns nothing else, so it cannot
                        write outside scratch except in world-writable dirs (/tmp, /dev/shm)
signals to the parent   as root: other uid, so ``os.kill(parent)`` fails with EPERM
network                 a fresh network namespace (``unshare(CLONE_NEWNET)``; only a down loopback);
                        without root, a user+network namespace if the kernel allows it
environment             ``python -I -B``, minimal env (PATH, HOME/TMPDIR = scratch, LANG)
======================  ==========================================================================

``sandbox_report()`` says which of these are active on this machine. Tests run in one interpreter after the
program, each under its own alarm; per-test pass/fail comes back on a line tagged with a random nonce
that the program cannot see in its environment, so ``sys.exit(0)``/``os._exit(0)`` in a solution pass nothing.
(Code that digs the nonce out of the harness's stack frames could forge a result: this is a sandbox for
mistakes and reward hacks, not for adversaries with a kernel exploit.)
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from tulu.verifiers.base import VerifyResult, register

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_UID_BASE = 3_000_000
_counter = 0

_HARNESS = r'''
import json, os, signal, sys
nonce = os.environ.pop("TULU_SANDBOX_NONCE", "")
with open("_job.json", encoding="utf-8") as fh:
    job = json.load(fh)
os.remove("_job.json")
out = os.fdopen(os.dup(1), "w")
def _alarm(signum, frame):
    raise TimeoutError("test timed out")
signal.signal(signal.SIGALRM, _alarm)
env = {"__name__": "__sandbox__"}
results = []
try:
    exec(compile(job["program"], "solution.py", "exec"), env)
    prog_err = ""
except BaseException as exc:
    prog_err = "program: %s: %s" % (type(exc).__name__, str(exc)[:200])
for i, test in enumerate(job["tests"]):
    if prog_err:
        results.append([False, prog_err])
        continue
    try:
        signal.alarm(job["per_test_s"])
        exec(compile(test, "test_%d.py" % i, "exec"), env)
        results.append([True, ""])
    except BaseException as exc:
        results.append([False, "%s: %s" % (type(exc).__name__, str(exc)[:200])])
    finally:
        signal.alarm(0)
out.write("\n" + nonce + json.dumps(results) + "\n")
out.flush()
os._exit(0)
'''


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0  # wall time for the whole run
    per_test_s: int = 5  # alarm per test inside the run
    memory_mb: int = 1024
    max_procs: int = 16
    max_file_mb: int = 16
    max_open_files: int = 64
    output_bytes: int = 65536  # how much of stdout/stderr comes back


@dataclass
class CaseOutcome:
    passed: bool
    error: str = ""


@dataclass
class RunResult:
    status: str  # "ok" (harness finished), "timeout", "crashed", "no result"
    tests: list[CaseOutcome] = field(default_factory=list)
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    @property
    def n_passed(self) -> int:
        return sum(t.passed for t in self.tests)

    @property
    def all_passed(self) -> bool:
        return bool(self.tests) and all(t.passed for t in self.tests)


# ---------------------------------------------------------------------------------------------- pass@k

def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), for n samples of which c are correct."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):  # C(n-c,k)/C(n,k) = prod_{i=n-c+1..n} (1 - k/i)
        prod *= 1.0 - k / i
    return 1.0 - prod


# ------------------------------------------------------------------------------------------ sandboxing

def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _is_root() -> bool:
    return os.geteuid() == 0


def _new_uid() -> int:
    global _counter
    _counter += 1
    return _UID_BASE + (os.getpid() * 1000 + _counter) % 1_000_000


def _preexec(limits: SandboxLimits, uid: int | None, netns: bool, libc: Any) -> Any:
    def fn() -> None:
        os.setsid()
        if netns:
            flags = CLONE_NEWNET if uid is not None else (CLONE_NEWUSER | CLONE_NEWNET)
            if libc.unshare(flags) != 0:
                os._exit(121)  # isolation was promised by the probe and failed: refuse to run
        cpu = max(1, math.ceil(limits.timeout_s))
        mb = 1024 * 1024
        for res, val in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                         (resource.RLIMIT_AS, (limits.memory_mb * mb,) * 2),
                         (resource.RLIMIT_FSIZE, (limits.max_file_mb * mb,) * 2),
                         (resource.RLIMIT_NOFILE, (limits.max_open_files,) * 2),
                         (resource.RLIMIT_CORE, (0, 0)),
                         (resource.RLIMIT_NPROC, (limits.max_procs,) * 2)):
            resource.setrlimit(res, val)
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return fn


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                        break  # already dead, waiting to be reaped by init
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(d))
                        break
        except OSError:
            continue
    return pids


def _kill_run(proc: subprocess.Popen, uid: int | None) -> None:
    """SIGKILL the run's process group and, with a private uid, every process that uid owns."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is not None:
        for _ in range(50):  # a fork bomb may still be spawning; the NPROC limit bounds it
            pids = _pids_of_uid(uid)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _read_capped(path: Path, n: int) -> str:
    with open(path, "rb") as fh:
        return fh.read(n).decode("utf-8", errors="replace")


@lru_cache(maxsize=1)
def sandbox_report() -> dict[str, Any]:
    """What this machine enforces: the interpreter used, uid isolation, network isolation."""
    root = _is_root()
    candidates = [sys.executable, "/usr/bin/python3", shutil.which("python3") or ""]
    info: dict[str, Any] = {"root": root, "private_uid": root, "python": None, "network_namespace": False}
    for netns in (True, False):
        for exe in candidates:
            if not exe or not os.path.exists(exe):
                continue
            try:
                r = _spawn(exe, "import socket; print(len(socket.if_nameindex()))", [],
                           SandboxLimits(timeout_s=20), netns=netns, raw=True)
            except OSError:  # e.g. the interpreter lies under a directory the private uid cannot enter
                continue
            if r.returncode == 0 and r.stdout.strip().isdigit():
                info.update(python=exe, network_namespace=netns, interfaces=int(r.stdout.strip()))
                return info
    return info


def _spawn(exe: str, program: str, tests: Sequence[str], limits: SandboxLimits, *, netns: bool,
           raw: bool = False) -> RunResult:
    uid = _new_uid() if _is_root() else None
    nonce = secrets.token_hex(16)
    scratch = Path(tempfile.mkdtemp(prefix="tulu-sbx-"))
    outdir = Path(tempfile.mkdtemp(prefix="tulu-sbx-out-"))
    libc = _libc()
    t0 = time.monotonic()
    try:
        if raw:
            (scratch / "main.py").write_text(program, encoding="utf-8")
        else:
            (scratch / "main.py").write_text(_HARNESS, encoding="utf-8")
            job = {"program": program, "tests": list(tests), "per_test_s": int(limits.per_test_s)}
            (scratch / "_job.json").write_text(json.dumps(job), encoding="utf-8")
        if uid is not None:
            for p in (scratch, *scratch.iterdir()):
                os.chown(p, uid, uid)
        os.chmod(scratch, 0o700)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch), "LANG": "C.UTF-8",
               "TULU_SANDBOX_NONCE": nonce}
        with open(outdir / "out", "wb") as out, open(outdir / "err", "wb") as err:
            proc = subprocess.Popen([exe, "-I", "-B", "main.py"], cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, close_fds=True,
                                    preexec_fn=_preexec(limits, uid, netns, libc))
            try:
                rc = proc.wait(timeout=limits.timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                rc, timed_out = None, True
            finally:
                _kill_run(proc, uid)  # always: stray children, and the parent's own timeouts (SIGALRM)
        stdout = _read_capped(outdir / "out", limits.output_bytes)
        stderr = _read_capped(outdir / "err", limits.output_bytes)
        res = RunResult("timeout" if timed_out else "ok", [], rc, stdout, stderr, time.monotonic() - t0)
        if raw or timed_out:
            return res
        tagged = [ln for ln in _read_capped(outdir / "out", 1 << 24).splitlines() if ln.startswith(nonce)]
        if not tagged:
            res.status = "crashed" if rc else "no result"
            return res
        res.tests = [CaseOutcome(bool(ok), str(msg)) for ok, msg in json.loads(tagged[-1][len(nonce):])]
        return res
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(outdir, ignore_errors=True)


def run_tests(program: str, tests: Sequence[str], limits: SandboxLimits | None = None) -> RunResult:
    """Run ``program`` and then each test (Python source) in a sandboxed interpreter; per-test outcomes."""
    limits = limits or SandboxLimits()
    rep = sandbox_report()
    if rep["python"] is None:
        raise RuntimeError("code sandbox: no Python interpreter can start under the sandbox limits here")
    res = _spawn(rep["python"], program, tests, limits, netns=rep["network_namespace"])
    if not res.tests:
        why = {"timeout": "timeout", "crashed": f"crashed (exit {res.returncode})"}.get(res.status, res.status)
        res.tests = [CaseOutcome(False, why) for _ in tests]
    return res


# ------------------------------------------------------------------------------------------- verifier

_FENCE_RE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.S)


def extract_code(response: str) -> str:
    """The last fenced code block of a response, or the whole response when it has none."""
    blocks = _FENCE_RE.findall(response)
    return blocks[-1] if blocks else response


def parse_code_ground_truth(gt: Any) -> tuple[list[str], str]:
    """(tests, setup code) from ``{"tests": [...]}`` or HumanEval's ``{"test": ..., "entry_point": ...}``."""
    if isinstance(gt, str):
        gt = json.loads(gt)
    if not isinstance(gt, dict):
        raise ValueError(f"code ground_truth must be a dict (or its JSON), got {type(gt).__name__}")
    setup = str(gt.get("setup", ""))
    if "tests" in gt:
        tests = gt["tests"]
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise ValueError("code ground_truth field 'tests': must be a list of strings")
        return list(tests), setup
    if "test" in gt and "entry_point" in gt:
        return [f"{gt['test']}\ncheck({gt['entry_point']})\n"], setup
    raise ValueError("code ground_truth: needs field 'tests' (list of str) or 'test' + 'entry_point'")


@register("code", timeout_s=600)
def verify_code(response: str, ground_truth: Any, partial: bool = False, limits: SandboxLimits | None = None,
                **_: Any) -> VerifyResult:
    """1 when every test passes (``partial=True``: the fraction of tests passed)."""
    tests, setup = parse_code_ground_truth(ground_truth)
    program = (setup + "\n" if setup else "") + extract_code(response)
    res = run_tests(program, tests, limits)
    passed = [t.passed for t in res.tests]
    score = (sum(passed) / len(passed) if passed else 0.0) if partial else float(bool(passed) and all(passed))
    first_err = next((t.error for t in res.tests if not t.passed), "")
    reason = f"{sum(passed)}/{len(passed)} tests passed" + (f"; {first_err}" if first_err else "")
    return VerifyResult(score, reason, passed)
