"""The decontamination report: a JSON-able dict, rendered as markdown and as HTML with shared spans marked.

Per training dataset × benchmark: eval instances hit, their percentage of the benchmark, flagged or not
(> ``flag_threshold``, 2% in Tulu 3), the overlap ratios, and a few example matches showing the
training text beside the benchmark text. The report holds no timings, so two runs over the same data
(e.g. the process pool and Ray Data) give identical reports.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Sequence

from tulu.decontam.evalsets import EvalInstance
from tulu.decontam.ngrams import TOKEN_RE
from tulu.decontam.scan import ScanResult

SEP = "\n\n"  # between segments (turns) in displayed texts


@dataclass(frozen=True)
class ReportSettings:
    ngram: int = 8
    threshold: float = 0.5
    flag_threshold: float = 0.02
    train_fields: tuple[str, ...] = ("user",)
    eval_fields: tuple[str, ...] = ("prompt",)
    examples: int = 3


def build_report(scan: ScanResult, evals: Sequence[EvalInstance], eval_ntok: Sequence[int],
                 settings: ReportSettings, skipped: dict[str, str] | None = None) -> dict:
    """Aggregate a scan into the report dict (deterministic: sorted, no timings)."""
    bench_names = list(dict.fromkeys(e.benchmark for e in evals))
    bench_total = {b: 0 for b in bench_names}
    bench_short = {b: 0 for b in bench_names}
    for e, k in zip(evals, eval_ntok):
        bench_total[e.benchmark] += 1
        bench_short[e.benchmark] += int(k < settings.ngram)

    datasets = []
    for si, src in enumerate(scan.sources):
        # best training instance per eval instance: most covered tokens, then lowest record index
        best: dict[int, tuple[int, int, str]] = {}  # eval -> (covered, record, loc)
        per_eval_train: dict[int, int] = {}
        train_by_bench: dict[str, set[int]] = {b: set() for b in bench_names}
        for s, rec, loc, e, cov in scan.matches:
            if s != si:
                continue
            per_eval_train[e] = per_eval_train.get(e, 0) + 1
            train_by_bench[evals[e].benchmark].add(rec)
            if e not in best or cov > best[e][0]:
                best[e] = (cov, rec, loc)
        rows = {}
        for b in bench_names:
            hits = sorted(e for e in best if evals[e].benchmark == b)
            ratio = {e: best[e][0] / eval_ntok[e] for e in hits}
            ratios = list(ratio.values())
            total = bench_total[b]
            frac = len(hits) / total if total else 0.0
            order = sorted(hits, key=lambda e: (-ratio[e], e))[:settings.examples]
            rows[b] = {
                "hit": len(hits), "total": total, "percent": round(100 * frac, 4),
                "flagged": frac > settings.flag_threshold,
                "train_instances": len(train_by_bench[b]),
                "max_overlap": round(max(ratios), 4) if ratios else 0.0,
                "mean_overlap": round(sum(ratios) / len(ratios), 4) if ratios else 0.0,
                "hit_ids": [evals[e].id for e in hits],  # the report's contamination column needs the union
                "examples": [_example(scan, si, evals[e], best[e], eval_ntok[e], per_eval_train[e], settings)
                             for e in order],
            }
        flagged_by = [b for b in bench_names if rows[b]["flagged"]]
        datasets.append({
            "name": src.name, "path": str(src.path), "instances": scan.n_records[si],
            "contaminating_instances": len(scan.removed(si)),
            "flagged": bool(flagged_by), "flagged_by": flagged_by, "benchmarks": rows,
        })
    return {
        "settings": {"ngram": settings.ngram, "threshold": settings.threshold,
                     "flag_threshold": settings.flag_threshold, "train_fields": list(settings.train_fields),
                     "eval_fields": list(settings.eval_fields)},
        "benchmarks": {b: {"instances": bench_total[b], "too_short": bench_short[b]} for b in bench_names},
        "skipped_benchmarks": dict(skipped or {}),
        "datasets": datasets,
    }


def _example(scan: ScanResult, si: int, ev: EvalInstance, best: tuple[int, int, str], ntok: int,
             n_train: int, settings: ReportSettings) -> dict:
    cov, rec, loc = best
    eval_segs = ev.segments(settings.eval_fields)
    train_segs = scan.texts.get((si, rec), [])
    ev_spans, tr_spans = shared_spans(eval_segs, train_segs, settings.ngram)
    return {"eval_id": ev.id, "overlap": round(cov / ntok, 4), "covered_tokens": cov, "eval_tokens": ntok,
            "train_index": rec, "train_location": loc, "matching_train_instances": n_train,
            "eval_text": SEP.join(eval_segs), "train_text": SEP.join(train_segs),
            "eval_spans": ev_spans, "train_spans": tr_spans}


# ------------------------------------------------------------------------------------------ spans
def _tokens_with_offsets(segs: Sequence[str]) -> list[list[tuple[int, int, str]]]:
    out, base = [], 0
    for s in segs:
        out.append([(base + m.start(), base + m.end(), m.group().lower()) for m in TOKEN_RE.finditer(s)])
        base += len(s) + len(SEP)
    return out


def _flags(toks: list[tuple[int, int, str]], other: set[tuple[str, ...]], n: int) -> list[bool]:
    words = [t[2] for t in toks]
    flags = [False] * len(words)
    for i in range(len(words) - n + 1):
        if tuple(words[i:i + n]) in other:
            flags[i:i + n] = [True] * n
    return flags


def _merge(toks: list[tuple[int, int, str]], flags: list[bool]) -> list[list[int]]:
    spans: list[list[int]] = []
    prev = False
    for (a, b, _), f in zip(toks, flags):
        if f and prev:
            spans[-1][1] = b
        elif f:
            spans.append([a, b])
        prev = f
    return spans


def shared_spans(eval_segs: Sequence[str], train_segs: Sequence[str], n: int) -> tuple[list[list[int]], list[list[int]]]:
    """Character spans ``[start, end)`` (in the ``SEP``-joined texts) of the n-grams the two sides share."""
    ev, tr = _tokens_with_offsets(eval_segs), _tokens_with_offsets(train_segs)

    def grams(seglist):
        return {tuple(w[2] for w in seg[i:i + n]) for seg in seglist for i in range(len(seg) - n + 1)}

    ev_g, tr_g = grams(ev), grams(tr)
    ev_spans = [sp for seg in ev for sp in _merge(seg, _flags(seg, tr_g, n))]
    tr_spans = [sp for seg in tr for sp in _merge(seg, _flags(seg, ev_g, n))]
    return ev_spans, tr_spans


def mark(text: str, spans: Sequence[Sequence[int]], open_: str, close: str, escape=lambda s: s) -> str:
    """``text`` with every span wrapped in ``open_``/``close`` (other text passed through ``escape``)."""
    out, pos = [], 0
    for a, b in spans:
        out.append(escape(text[pos:a]))
        out.append(open_ + escape(text[a:b]) + close)
        pos = b
    out.append(escape(text[pos:]))
    return "".join(out)


# ------------------------------------------------------------------------------------------ rendering
def _summary_rows(report: dict) -> list[tuple[dict, str, dict]]:
    return [(d, b, row) for d in report["datasets"] for b, row in d["benchmarks"].items() if row["hit"]]


def _clip(text: str, limit: int = 1200) -> str:
    return text if len(text) <= limit else text[:limit] + " […]"


def to_markdown(report: dict) -> str:
    s = report["settings"]
    lines = ["# Decontamination report", "",
             f"{s['ngram']}-gram matching on lowercased, punctuation-split tokens. An eval instance is "
             f"contaminated by a training instance when more than {s['threshold']:.0%} of its tokens are covered "
             f"by {s['ngram']}-grams shared with that one instance; a dataset is flagged when it contaminates more "
             f"than {s['flag_threshold']:.0%} of any benchmark. Training fields: {', '.join(s['train_fields'])}; "
             f"eval fields: {', '.join(s['eval_fields'])}.", "",
             "## Datasets", "", "| dataset | instances | contaminating instances | flagged | flagged by |",
             "|---|---:|---:|---|---|"]
    for d in report["datasets"]:
        lines.append(f"| {d['name']} | {d['instances']} | {d['contaminating_instances']} | "
                     f"{'**yes**' if d['flagged'] else 'no'} | {', '.join(d['flagged_by']) or '-'} |")
    lines += ["", "## Benchmarks indexed", "", "| benchmark | instances | shorter than n |", "|---|---:|---:|"]
    lines += [f"| {b} | {v['instances']} | {v['too_short']} |" for b, v in report["benchmarks"].items()]
    if report["skipped_benchmarks"]:
        lines += ["", "Not indexed (cannot be loaded here):", ""]
        lines += [f"- {why if why.startswith(b) else f'{b}: {why}'}" for b, why in report["skipped_benchmarks"].items()]
    rows = _summary_rows(report)
    lines += ["", "## Hits (dataset × benchmark)", ""]
    if not rows:
        lines.append("No eval instance is contaminated.")
    else:
        lines += ["| dataset | benchmark | eval hit | % | flagged | training instances | mean overlap | max overlap |",
                  "|---|---|---:|---:|---|---:|---:|---:|"]
        for d, b, r in rows:
            lines.append(f"| {d['name']} | {b} | {r['hit']}/{r['total']} | {r['percent']:.2f} | "
                         f"{'**yes**' if r['flagged'] else 'no'} | {r['train_instances']} | "
                         f"{r['mean_overlap']:.2f} | {r['max_overlap']:.2f} |")
        lines += ["", "## Examples", "", "Shared spans are in **bold**.", ""]
        for d, b, r in rows:
            for ex in r["examples"]:
                lines += [f"### {d['name']} × {b} #{ex['eval_id']} (overlap {ex['overlap']:.0%}, "
                          f"training instance {ex['train_index']} at `{ex['train_location']}`)", "",
                          "**Benchmark:**", "", _quote(mark(ex["eval_text"], ex["eval_spans"], "**", "**", _md_escape)), "",
                          "**Training:**", "", _quote(mark(ex["train_text"], ex["train_spans"], "**", "**", _md_escape)), ""]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\*_`<>[]#|" else c for c in text)


def _quote(text: str) -> str:
    return "\n".join("> " + ln for ln in _clip(text, 2000).splitlines())


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}.flag{color:#b00;font-weight:bold}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em;margin-bottom:2em}
.pair pre{white-space:pre-wrap;background:#f7f7f7;padding:8px;margin:0;max-height:24em;overflow:auto}
mark{background:#ffd54f}"""


def to_html(report: dict) -> str:
    esc = html.escape
    s = report["settings"]
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>Decontamination report</title>"
           f"<style>{_CSS}</style></head><body><h1>Decontamination report</h1>",
           f"<p>{s['ngram']}-grams; contaminated when &gt; {s['threshold']:.0%} of an eval instance's tokens are "
           f"covered by one training instance; flagged when &gt; {s['flag_threshold']:.0%} of a benchmark is hit. "
           f"Training fields: {esc(', '.join(s['train_fields']))}; eval fields: {esc(', '.join(s['eval_fields']))}.</p>",
           "<h2>Datasets</h2><table><tr><th>dataset</th><th>instances</th><th>contaminating</th><th>flagged by</th></tr>"]
    for d in report["datasets"]:
        flag = f"<span class='flag'>{esc(', '.join(d['flagged_by']))}</span>" if d["flagged"] else "-"
        out.append(f"<tr><td>{esc(d['name'])}</td><td>{d['instances']}</td><td>{d['contaminating_instances']}</td>"
                   f"<td>{flag}</td></tr>")
    out.append("</table><h2>Hits</h2>")
    rows = _summary_rows(report)
    if not rows:
        out.append("<p>No eval instance is contaminated.</p>")
    else:
        out.append("<table><tr><th>dataset</th><th>benchmark</th><th>eval hit</th><th>%</th><th>flagged</th>"
                   "<th>training instances</th><th>mean overlap</th><th>max overlap</th></tr>")
        for d, b, r in rows:
            out.append(f"<tr><td>{esc(d['name'])}</td><td>{esc(b)}</td><td>{r['hit']}/{r['total']}</td>"
                       f"<td>{r['percent']:.2f}</td><td>{'<span class=flag>yes</span>' if r['flagged'] else 'no'}</td>"
                       f"<td>{r['train_instances']}</td><td>{r['mean_overlap']:.2f}</td><td>{r['max_overlap']:.2f}</td></tr>")
        out.append("</table><h2>Examples</h2>")
        for d, b, r in rows:
            for ex in r["examples"]:
                out.append(f"<h3>{esc(d['name'])} × {esc(b)} #{esc(ex['eval_id'])}: overlap {ex['overlap']:.0%}, "
                           f"training instance {ex['train_index']} (<code>{esc(ex['train_location'])}</code>)</h3>"
                           "<div class='pair'><div><b>benchmark</b><pre>"
                           + mark(ex["eval_text"], ex["eval_spans"], "<mark>", "</mark>", esc)
                           + "</pre></div><div><b>training</b><pre>"
                           + mark(ex["train_text"], ex["train_spans"], "<mark>", "</mark>", esc)
                           + "</pre></div></div>")
    if report["skipped_benchmarks"]:
        out.append("<h2>Not indexed</h2><ul>")
        out += [f"<li>{esc(why if why.startswith(b) else f'{b}: {why}')}</li>"
                for b, why in report["skipped_benchmarks"].items()]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)
