"""Penn-Treebank-style word tokenization, as ``nltk.word_tokenize`` does it (English).

IFEval's ``change_case:capital_word_frequency`` counts the tokens of ``nltk.word_tokenize`` that are
all upper case, so the split points matter: ``DON'T`` is two tokens (``DO``, ``N'T``), ``CANNOT`` is two,
``HELLO,WORLD`` is three. ``word_tokenize`` splits text into sentences with Punkt (see
:mod:`tulu.verifiers.punkt`) and then applies the Treebank conventions to each sentence:

* opening quotes become separate tokens (a straight ``"`` at the start or after an opening bracket or
  space becomes ``\\`\\```; ``'`` before a word that is not a contraction is split off);
* ``:`` and ``,`` are split off unless a digit follows; ``;@#$%&``, dashes, ``?!``, ``*`` and brackets
  always are; runs of periods are one token; only the sentence-final period is split off;
* closing quotes become ``''``; clitics (``'s 'm 'd 'll 're 've n't``) are split from their word;
* a few fused forms are split in two (``cannot``, ``gimme``, ``gonna``, ``gotta``, ``lemme``,
  ``wanna``, ``more'n``, ``d'ye``, ``'tis``, ``'twas``).

The rules below are applied in that order to reproduce NLTK's tokens exactly (checked by the parity
test against nltk itself).
"""

from __future__ import annotations

import re

from tulu.verifiers.punkt import sent_tokenize

_Rule = tuple["re.Pattern[str]", str]


def _rules(*pairs: tuple[str, str], flags: int = 0) -> list[_Rule]:
    return [(re.compile(p, flags), r) for p, r in pairs]


_OPENING = _rules(
    ("([«“‘„]|[`]+)", r" \1 "),  # typographic opening quotes and backticks
    (r'^"', "``"),  # a straight double quote that opens the sentence
    ("(``)", r" \1 "),
    (r"""([ (\[{<])("|'')""", r"\1 `` "),  # a straight quote after a space or opening bracket
    (r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)", r"\1 "),  # opening single quote
)
_FINAL_CLOSERS = "\\]\\)}>\"'»”’"
_PUNCT = _rules(
    (rf"([^.])(\.)([{_FINAL_CLOSERS} ]*+)\s*$", r"\1 \2 \3 "),  # sentence-final period (+ closers)
    (r"([:,])([^\d])", r" \1 \2"),  # : and , unless between digits
    (r"([:,])$", r" \1 "),
    (r"\.{2,}", r" \g<0> "),  # ellipsis
    (r"[;@#$%&]", r" \g<0> "),
    ("[\u2012-\u2015]", r" \g<0> "),  # figure/en/em dashes, horizontal bar
    (rf"([^.])(\.)([{_FINAL_CLOSERS}]*)\s*$", r"\1 \2\3 "),
    (r"[?!]", r" \g<0> "),
    (r"([^'])' ", r"\1 ' "),
    (r"[*]", r" \g<0> "),
    (r"[\]\[(){}<>]", r" \g<0> "),  # brackets
    (r"--", r" -- "),
)
_CLOSING = _rules(
    ("([»”’])", r" \1 "),
    (r"''", " '' "),
    (r'"', " '' "),
    (r"\s+", " "),
    (r"([^' ])('[sS]|'[mM]|'[dD]|') ", r"\1 \2 "),  # clitics 's 'm 'd and a bare closing '
    (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 "),
)
_FUSED = _rules(
    *[
        (rf"(?i)\b({a})({b}){end}", r" \1 \2 ")
        for a, b, end in (
            ("can", "not", r"\b"),
            ("d", "'ye", r"\b"),
            ("gim", "me", r"\b"),
            ("gon", "na", r"\b"),
            ("got", "ta", r"\b"),
            ("lem", "me", r"\b"),
            ("more", "'n", r"\b"),
            ("wan", "na", r"(?=\s)"),
        )
    ],
    (r"(?i) ('t)(is)\b", r" \1 \2 "),
    (r"(?i) ('t)(was)\b", r" \1 \2 "),
)


def tokenize_sentence(sentence: str) -> list[str]:
    """Treebank tokens of one sentence."""
    text = sentence
    for pat, rep in _OPENING + _PUNCT:
        text = pat.sub(rep, text)
    text = f" {text} "
    for pat, rep in _CLOSING + _FUSED:
        text = pat.sub(rep, text)
    return text.split()


def word_tokenize(text: str) -> list[str]:
    """``nltk.word_tokenize(text)``: Punkt sentences, then Treebank tokens of each."""
    return [tok for sent in sent_tokenize(text) for tok in tokenize_sentence(sent)]
