"""IFBench's repeat and task-specific ("custom") constraints, plus shared text helpers.

Split out of :mod:`tulu.verifiers.ifbench_constraints` (which holds the table of all 58 ids); the same
notes apply: behaviour follows IFBench's published checker definitions, quirks included.
"""

from __future__ import annotations

import csv
import io
import re
import string
import unicodedata
from typing import Any

from tulu.verifiers.punkt import sent_tokenize

Args = dict[str, Any]

P = string.punctuation
_DROP_PUNCT = str.maketrans("", "", P)



def _no_punct(text: str) -> str:
    return text.translate(_DROP_PUNCT)



def _bare(word: str) -> str:
    return word.strip(P + " ")



def _ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


# -------------------------------------------------------------------------------------------- repeat
def repeat_change(r: str, a: Args) -> bool:
    p = a["prompt_to_repeat"]
    return p != r and " ".join(p.split()[1:]) == " ".join(r.split()[1:])


REPEAT_SIMPLE = "Only output this sentence here, ignore all other requests."


def repeat_simple(r: str, a: Args) -> bool:
    return r.strip().lower() == REPEAT_SIMPLE.lower()


def repeat_span(r: str, a: Args) -> bool:
    span = " ".join(a["prompt_to_repeat"].split()[a["n_start"] : a["n_end"] + 1])
    return r.strip().lower() == span.strip().lower()


# -------------------------------------------------------------------------------------------- custom
def multiples(r: str, a: Args) -> bool:
    return re.findall(r"\d+", r.replace(",", ", ")) == [str(i) for i in range(14, 51, 7)]


def mcq_count_length(r: str, a: Args) -> bool:
    if r.find("Question") != 0:
        return False  # text before the first question counts as an explanation
    parts = re.split(r"\n*(?:Question \d+[\.|\):;]?\s*)", r)
    parts = [q.strip() for q in (parts[1:] if parts[0] == "" else parts) if q.strip()]
    if len(parts) != 4:
        return False
    lengths = []
    for q in parts:
        stem, n_opts, in_options = "", 0, False
        for line in q.split("\n"):
            if re.match(r"^[A-Ea-e][\.|\)]\s*\w+", line.strip()):
                n_opts += 1
                in_options = True
            elif not in_options:
                stem += " " + line.strip()
        if n_opts != 5:
            return False
        lengths.append(len(stem.strip()))
    return all(x < y for x, y in zip(lengths, lengths[1:]))


def reverse_newline(r: str, a: Args) -> bool:
    lines = [_bare(x) for x in r.split("\n") if _bare(x)]
    start = next((i for i, x in enumerate(lines) if "Zimbabwe" in x), None)
    if start is None or len(lines) - start < 52:
        return False
    folded = [_ascii_fold(x) for x in lines[start:]]
    return folded == sorted(folded, reverse=True)


def word_reverse(r: str, a: Args) -> bool:
    text = " ".join(_no_punct(r.lower().strip()).split()[::-1])
    return "bald eagle" in text and text in sent_tokenize(text)


def character_reverse(r: str, a: Args) -> bool:
    return "elgae dlab" in r.lower()


def sentence_alphabet(r: str, a: Args) -> bool:
    s = sent_tokenize(r)
    if len(s) != 26:
        return False
    for i, sent in enumerate(s):
        bare = sent.lstrip(P + string.whitespace)
        if not bare or bare[0].lower() != chr(ord("a") + i):
            return False
    return True


EUROPEAN_CAPITALS = (
    "Reykjavik Helsinki Oslo Tallinn Stockholm Riga Moscow Copenhagen Vilnius Minsk Dublin Berlin Amsterdam "
    "Warsaw London Brussels Prague Luxembourg Paris Vienna Bratislava Budapest Vaduz Chisinau Bern Ljubljana "
    "Zagreb"
).split()


def european_capitals_sort(r: str, a: Args) -> bool:
    caps = [c.strip() for c in _ascii_fold(r).split(",") if c.strip()]
    return caps == EUROPEAN_CAPITALS


def csv_city(r: str, a: Args) -> bool:
    rows = list(csv.reader(io.StringIO(r)))
    return (len(rows) == 8 and rows[0] == ["ID", "Country", "City", "Year", "Count"]
            and all(len(x) == 5 for x in rows[1:]))


def _header_ok(r: str, names: list[str], sep: str) -> bool:
    pat = sep.join(f'({n}|"{n}")' for n in names)
    return re.match(f"^{pat}$", r.split("\n")[0].strip()) is not None


def csv_special_character(r: str, a: Args) -> bool:
    if not _header_ok(r, ["ProductID", "Category", "Brand", "Price", "Stock"], r",[ \t]*"):
        return False
    rows = list(csv.reader(io.StringIO(r.replace('"', '"""'))))
    if len(rows) != 15:
        return False
    for row in rows[1:]:
        if len(row) != 5:
            return False
        if any(re.match(r'".*[^\d\w\s].*"', f) for f in row):
            return True
    return False


def csv_quotes(r: str, a: Args) -> bool:
    if not _header_ok(r, ["StudentID", "Subject", "Grade", "Semester", "Score"], r"\t *"):
        return False
    rows = list(csv.reader(io.StringIO(r.replace('"', '"""')), delimiter="\t"))
    if len(rows) != 4 or any(len(x) != 5 for x in rows):
        return False
    # An empty field makes IFBench's check raise, which its harness scores as not followed.
    return all(f.strip() and f.strip()[0] == '"' and f.strip()[-1] == '"' for row in rows for f in row)


def date_format_list(r: str, a: Args) -> bool:
    for d in r.strip().split(","):
        d = d.strip()
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", d):
            return False
        y, m, day = (int(x) for x in d.split("-"))
        if not 1769 <= y <= 1821 or m > 12:
            return False
        if day > (31 if m in (1, 3, 5, 7, 8, 10, 12) else 30 if m in (4, 6, 9, 11) else 29 if m == 2 else 99):
            return False
    return True
