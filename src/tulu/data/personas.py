"""Persona-driven prompt synthesis (Tulu 3 report §3.1.2, after Persona Hub): the pure parts.

A generator LLM gets one persona ("A beekeeper in a mountain village ...") and one task template and
writes one new user prompt that such a person might ask. Three templates, as in Tulu 3:

* ``if``: a precise-instruction-following prompt: a request plus one or more verifiable constraints. The
  generator is shown a few hand-written constraint instructions (:data:`IF_SEEDS`) as examples;
* ``math``: a math word problem grounded in the persona's world;
* ``code``: a programming task the persona would need solved.

Personas come from a file: plain text (one per line, ``#`` comments), or JSONL with a ``persona`` field
(Persona Hub's ``persona.jsonl``) or an ``input persona`` field (its task subsets). The package ships
:data:`DEFAULT_PERSONAS`, a small list written for this project.

:func:`clean_prompt` turns the generator's answer into a prompt (or rejects it), :func:`normalize` is the
key duplicates are found under, and :func:`prompt_record` writes the record with its provenance. The
driver that calls the LLM is :mod:`tulu.curate.persona`.
"""

from __future__ import annotations

import random
import re
from importlib import resources
from pathlib import Path

from tulu.data.formats import DataError, scan_jsonl
from tulu.utils import stable_hash

TEMPLATES = ("if", "math", "code")

# Hand-written constraint instructions the `if` template shows as examples (our own wording).
IF_SEEDS = (
    "Answer in exactly three bullet points, each starting with '* '.",
    "Write the whole answer in lowercase letters; no capital letters at all.",
    "Do not use any commas in your reply.",
    "End your answer with the exact sentence 'That is all for today.'",
    "Keep the answer under 60 words.",
    "Put a title in double angle brackets, like <<my title>>, on the first line.",
    "Include the keywords 'budget' and 'deadline' at least once each.",
    "Wrap the entire answer in double quotation marks.",
    "Write exactly two paragraphs separated by the markdown divider ***.",
    "Finish with a postscript that starts with P.S.",
)

_INSTRUCTIONS = {
    "if": ("Write one request that the person below could send to an AI assistant. The request must ask for "
           "something concrete from their life or work, and it must add one or two precise constraints on the "
           "form of the answer that anyone could check, like these examples:\n{seeds}\n\n"
           "Persona: {persona}\n\n"
           "Reply with the request only (the task followed by its constraints), in the person's own voice, "
           "with no preamble and no answer."),
    "math": ("Write one math word problem that the person below might meet in their life or work. It should "
             "need several steps of reasoning and have a single exact numerical answer.\n\n"
             "Persona: {persona}\n\n"
             "Reply with the problem only: no solution, no answer, no preamble."),
    "code": ("Write one programming task that the person below might need solved. Say what the function or "
             "program takes as input and what it must return, in Python.\n\n"
             "Persona: {persona}\n\n"
             "Reply with the task only: no solution, no code, no preamble."),
}

DEFAULT_PERSONAS = "package:personas.txt"


def load_personas(path: str | Path | None = None) -> list[str]:
    """Personas from a text or JSONL file (see the module docstring); ``None``: the shipped list."""
    if path is None or str(path) == DEFAULT_PERSONAS:
        text = resources.files("tulu.data").joinpath("personas.txt").read_text(encoding="utf-8")
        return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such persona file")
    out: list[str] = []
    if p.suffix in (".jsonl", ".ndjson") or p.name.endswith(".jsonl.gz"):
        for loc, rec, error in scan_jsonl(p):
            if error is not None:
                raise DataError(error)
            persona = rec.get("persona", rec.get("input persona")) if isinstance(rec, dict) else None
            if not isinstance(persona, str) or not persona.strip():
                raise DataError(f"{loc}: persona: missing (expected a 'persona' or 'input persona' string field)")
            out.append(persona.strip())
    else:
        out = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()
               if ln.strip() and not ln.lstrip().startswith("#")]
    if not out:
        raise DataError(f"{p}: no personas")
    return list(dict.fromkeys(out))  # the same persona twice would only make duplicates


def generator_messages(persona: str, template: str, rng: random.Random, num_seeds: int = 3) -> tuple[list[dict], list[str]]:
    """(chat messages for the generator, the IF seed instructions shown: empty for math and code)."""
    if template not in _INSTRUCTIONS:
        raise ValueError(f"unknown persona template {template!r} (expected one of {', '.join(TEMPLATES)})")
    seeds = rng.sample(IF_SEEDS, min(num_seeds, len(IF_SEEDS))) if template == "if" else []
    text = _INSTRUCTIONS[template].format(persona=persona, seeds="\n".join(f"- {s}" for s in seeds))
    return [{"role": "user", "content": text}], seeds


_PREFIXES = (
    re.compile(r"^(?:sure|okay|ok|certainly)\b[^\n]*\n+", re.IGNORECASE),  # "Sure! Here you go:" on its own line
    re.compile(r"^here(?:'s| is)[^\n:]*:\s*", re.IGNORECASE),  # "Here is the problem:"
    re.compile(r"^(?:\*\*)?(?:new |the )?(?:request|prompt|problem|task|question)\s*\d*\s*:\s*(?:\*\*)?\s*",
               re.IGNORECASE),  # "Request:", "**Problem 1:**"
)


def clean_prompt(text: str, *, min_chars: int = 20, max_chars: int = 2000) -> str | None:
    """The generated prompt with a leading label ("Request:", "Here is the problem:") and wrapping quotes
    removed; ``None`` when what is left is shorter than ``min_chars`` or longer than ``max_chars``."""
    t = text.strip()
    for pat in _PREFIXES:
        t = pat.sub("", t, count=1).strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        t = t[1:-1].strip()
    if not min_chars <= len(t) <= max_chars:
        return None
    return t


def normalize(text: str) -> str:
    """The dedup key: lowercase words only (punctuation, case and spacing differences are duplicates)."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def prompt_record(prompt: str, *, persona: str, template: str, generator: str, seed: int,
                  seeds_shown: list[str], response: str | None = None, responder: str | None = None) -> dict:
    """A prompt record (the user turn; with ``response`` an SFT record) and its provenance."""
    msgs = [{"role": "user", "content": prompt}]
    if response is not None:
        msgs.append({"role": "assistant", "content": response})
    prov = {"persona": persona, "template": template, "generator": generator, "seed": seed}
    if seeds_shown:
        prov["if_seeds"] = seeds_shown
    if responder is not None:
        prov["responder"] = responder
    return {"messages": msgs, "id": f"persona:{template}:{stable_hash(normalize(prompt), length=12)}",
            "source": f"persona:{template}", "provenance": prov}


def read_jsonl_dicts(path: str | Path) -> list[dict]:
    """Records of a JSONL file written by this package (a bad line raises DataError with file:line)."""
    out = []
    for loc, rec, error in scan_jsonl(path):
        if error is not None:
            raise DataError(error)
        out.append(rec)
    return out
