"""``report.html``: the run report as one self-contained page (inline CSS, plots as base64 PNG, no script, no
CDN): it opens offline and can be mailed as one file."""

from __future__ import annotations

import base64
import html
from typing import Any

from tulu.report.samples import verdict_mark
from tulu.report.significance import fmt_p

_CSS = """body{font-family:system-ui,-apple-system,sans-serif;margin:1.5em auto;max-width:1280px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}h3{margin-top:1.3em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:3px 5px;font-size:13px;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.avg td{font-weight:600;background:#fafafa}.muted,small{color:#666}
.sig-up{background:#e3f5e6;color:#0a6b22;font-weight:600}.sig-down{background:#fbe4e2;color:#a3231a;font-weight:600}
.noise{color:#777}.badge{display:inline-block;border-radius:3px;padding:0 4px;font-size:11px;margin-left:3px}
.badge.sig{background:#0a6b22;color:#fff}.badge.sigd{background:#a3231a;color:#fff}.badge.noise{background:#ddd;color:#444}
th.overall{background:#eef3fb}td.contam{min-width:8em;max-width:14em}tr.grp td:first-child{padding-left:1.5em;color:#555}
.verdict{background:#f6f8fa;border-left:4px solid #888;padding:.5em 1em}.verdict li{margin:.25em 0}
.flag{background:#fbe4e2;font-weight:600}.pass{color:#0a6b22;font-weight:600}.fail{color:#a3231a;font-weight:600}
.sample{border:1px solid #ddd;border-radius:4px;padding:.5em .8em;margin:.8em 0}
.sample pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:.2em 0;font-size:12px;background:#fafafa;padding:.4em}
.answers{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:.5em}.answers>div{min-width:0}
img{max-width:100%;border:1px solid #eee}nav a{margin-right:1em}"""

esc = html.escape


def _value(v: dict | None, note: str | None = None) -> str:
    if v is None:
        return f'<td class="num muted" title="{esc(note or "")}">—</td>'
    se = f" ± {v['stderr']:.1f}" if v.get("stderr") is not None else ""
    n = f"<br><small>n={v['n']}</small>" if v.get("n") else ""
    return f'<td class="num">{v["value"]:.1f}{se}{n}</td>'


def _delta(d: dict | None) -> str:
    if not d:
        return '<td class="num muted">—</td>'
    if d["p_value"] is None:
        return f'<td class="num muted" title="{esc(d["note"])}">{d["delta"]:+.1f}<br><small>untested</small></td>'
    if d["significant"]:
        cls, badge = ("sig-up", '<span class="badge sig">significant</span>') if d["delta"] > 0 else \
            ("sig-down", '<span class="badge sigd">significant</span>')
    else:
        cls, badge = "noise", '<span class="badge noise">within noise</span>'
    disc = d.get("discordant")
    extra = f"{disc[0]} up / {disc[1]} down" if disc else ""
    title = f"{d['test']} on {d['n']} paired items" + (f", {extra}" if extra else "") + \
        (f"; {d['note']}" if d.get("note") else "")
    return (f'<td class="num {cls}" title="{esc(title)}">{d["delta"]:+.1f}{badge}<br><small>[{d["low"]:+.1f}, '
            f'{d["high"]:+.1f}] p={fmt_p(d["p_value"])}' + (f"<br>{esc(extra)}" if extra else "") + "</small></td>")


def _img(plots: dict[str, bytes], name: str | None, alt: str) -> str:
    if not name or name not in plots:
        return ""
    return f'<p><img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(plots[name]).decode()}"></p>'


def _eval_tables(sec: dict[str, Any]) -> str:
    stages = sec["stages"]
    parts = []
    for suite in sec["eval"]["suites"]:
        overall = any(r.get("overall") is not None for r in suite["rows"])
        head = "".join(f"<th>{esc(s)}</th>" for s in stages)
        head += "".join(f"<th>Δ {esc(a)}→{esc(b)}</th>" for a, b in zip(stages, stages[1:]))
        if overall:
            head += f'<th class="overall">Δ {esc(stages[0])}→{esc(stages[-1])}<br><small>whole recipe</small></th>'
        body = []
        for r in suite["rows"]:
            cells = "".join(_value(v, n) for v, n in zip(r["values"], r["notes"]))
            cells += "".join(_delta(d) for d in r["deltas"][1:])
            cells += _delta(r.get("overall")) if overall else ""
            avg = r["task"].endswith("average")
            note = f'<br><small>{esc(r["test_note"])}</small>' if r.get("test_note") else ""
            sub = f'<br><small>{esc(", ".join(r["tasks"]))}</small>' if avg else ""
            cls = " class=avg" if avg else " class=grp" if r.get("group") else ""
            body.append(f'<tr{cls}><td>{esc(r["task"])}{sub}</td><td>{esc(r["metric"])}{note}</td>'
                        f'{cells}<td class=contam><small>{esc(r.get("contamination") or "")}</small></td></tr>')
        parts.append(f'<h4>{esc(suite["suite"])} suite</h4><table><tr><th>task</th><th>metric</th>{head}'
                     f'<th>contamination</th></tr>{"".join(body)}</table>')
        skipped = sorted({f"{r['task']}: {n.removeprefix(r['task'] + ': ')}" for r in suite["rows"] for n in r["notes"] if n})
        if skipped:
            parts.append("<details><summary>not run</summary><ul>" + "".join(f"<li>{esc(s)}</li>" for s in skipped)
                         + "</ul></details>")
    return "".join(parts)


def _rlvr_heldout(h: dict | None) -> str:
    if not h:
        return ""
    rows = []
    for r in h["rows"]:
        disc = r.get("discordant") or ("", "")
        rows.append(f'<tr><td>{esc(r["group"])}</td><td class="num">{r["n"]}</td><td class="num">{r["before"]:.1f}</td>'
                    f'<td class="num">{r["after"]:.1f}</td>{_delta(r)}<td class="num">{disc[0]} / {disc[1]}</td></tr>')
    return ("<h3>RLVR held-out check</h3><p class=muted>Greedy verdicts on the RLVR stage's held-out generator prompts "
            "(never trained on), before and after RLVR, paired per prompt.</p><table><tr><th>group</th><th>n</th>"
            f"<th>before</th><th>after</th><th>Δ</th><th>improved / worsened</th></tr>{''.join(rows)}</table>")


def _contamination(c: dict | None) -> str:
    if not c:
        return "<h3>Contamination</h3><p class=muted>No decontamination stage in this run.</p>"
    head = "".join(f"<th>{esc(b)}</th>" for b in c["benchmarks"])
    body = []
    for r in c["rows"]:
        cells = "".join(
            (f'<td class="num{" flag" if x["flagged"] else ""}" title="{x["percent"]:.2f}% of the benchmark">'
             f'{x["hit"]}/{x["total"]}</td>') if x["hit"] else '<td class="num muted">0</td>' for x in r["cells"].values())
        removed = "" if r["removed"] is None else str(r["removed"]) + (" (dataset dropped)" if r.get("dropped") else "")
        body.append(f'<tr><td>{esc(r["dataset"])}</td><td class="num">{r["instances"]}</td><td class="num">'
                    f'{r["contaminating"]}</td><td class="num">{removed}</td>'
                    f'<td>{esc(", ".join(r["flagged_by"])) or "—"}</td>{cells}</tr>')
    skipped = (f'<p class=muted>Not checked (did not load offline): {esc(", ".join(sorted(c["skipped"])))}.</p>'
               if c["skipped"] else "")
    return (f'<h3>Contamination</h3><p>{esc(c["settings"])}; mode <code>{esc(c["mode"])}</code>. Cells: benchmark items '
            f'hit by the dataset; red: flagged.</p><table><tr><th>dataset</th><th>instances</th><th>contaminating</th>'
            f'<th>removed</th><th>flagged by</th>{head}</tr>{"".join(body)}</table>{skipped}')


def _samples(ss: list[dict]) -> str:
    if not ss:
        return ""
    out = ["<h3>Samples</h3><p class=muted>The same prompts answered by every stage's model; items whose verdict "
           "differs between stages first.</p>"]
    for s in ss:
        answers = []
        for a in s["answers"]:
            mark = verdict_mark(a["verdict"])
            cls = "pass" if mark.startswith("✔") else "fail" if mark.startswith("✘") else ""
            cap = " <small>(hit the token cap)</small>" if a["finish"] == "length" else ""
            answers.append(f'<div><b>{esc(a["stage"])}</b> <span class="{cls}">{esc(mark)}</span>{cap}'
                           f'<pre>{esc(a["response"])}</pre></div>')
        out.append(f'<div class="sample"><b>{esc(s["task"])} #{esc(s["id"])}</b> <small>{esc(s["metric"])}; gold: '
                   f'{esc(s["gold"])}</small><pre>{esc(s["prompt"])}</pre><div class="answers">{"".join(answers)}</div></div>')
    return "".join(out)


def _curves(report: dict, plots: dict[str, bytes]) -> str:
    if not report["curves"]:
        return ""
    out = ['<h2 id="curves">Training curves</h2>']
    for stage, cv in report["curves"].items():
        rows = "".join(f'<tr><td>{esc(r["run"])}</td><td>{esc(r["metric"])}</td><td class="num">{r["points"]}</td>'
                       f'<td class="num">{r["first"]:.4g}</td><td class="num">{r["last"]:.4g}</td>'
                       f'<td class="num">{r["first_quarter"]:.4g}</td><td class="num">{r["last_quarter"]:.4g}</td></tr>'
                       for r in cv["rows"])
        out.append(f'<h3>{esc(stage.upper())}</h3>{_img(plots, cv["plot"], stage + " curves")}<details><summary>values'
                   f'</summary><table><tr><th>run</th><th>metric</th><th>points</th><th>first</th><th>last</th>'
                   f'<th>first-quarter mean</th><th>last-quarter mean</th></tr>{rows}</table></details>')
    return "".join(out)


def _cross(x: dict | None) -> str:
    if not x:
        return ""
    head = "".join(f"<th>{esc(lb)}</th>" for lb in x["labels"])
    head += "".join(f"<th>Δ {esc(lb)} − {esc(x['labels'][0])}</th>" for lb in x["labels"][1:])
    body = "".join(f'<tr><td>{esc(r["stage"])}</td><td>{esc(r["task"])}</td><td>{esc(r["metric"])}</td>'
                   + "".join(_value(v) for v in r["values"]) + "".join(_delta(d) for d in r["deltas"][1:]) + "</tr>"
                   for r in x["rows"])
    return ('<h2 id="side">Runs side by side</h2><p class=muted>Each run against the first, same stage, paired on the '
            f'items both answered.</p><table><tr><th>stage</th><th>task</th><th>metric</th>{head}</tr>{body}</table>')


def render_page(report: dict[str, Any], plots: dict[str, bytes]) -> str:
    runs = []
    for k, sec in enumerate(report["runs"]):
        verdict = "".join(f"<li>{esc(s)}</li>" for s in sec["verdict"])
        facts = "".join(f"<tr><th>{esc(a)}</th><td>{esc(b)}</td></tr>" for a, b in sec["facts"])
        size = ""
        if sec["eval"]["limit"]:
            size = f"<p class=muted>Items: {esc(' / '.join(sec['eval']['limit']))}"
            if sec["eval"]["max_new_tokens_cap"]:
                size += f"; generation capped at {esc(', '.join(map(str, sec['eval']['max_new_tokens_cap'])))} tokens"
            size += ".</p>"
        runs.append(
            f'<h2 id="run{k}">Run: {esc(sec["label"])}</h2>'
            + (f'<p class=muted>{esc(sec["root"])}</p>' if sec.get("root") else "")
            + f'<div class="verdict"><b>Verdict</b><ul>{verdict}</ul></div>'
            + f"<h3>Evaluation</h3>{size}{_eval_tables(sec)}{_img(plots, sec.get('headline_plot'), 'headline metrics')}"
            + _rlvr_heldout(sec.get("rlvr_heldout")) + _contamination(sec.get("contamination"))
            + _samples(sec["samples"])
            + (f"<h3>Run facts</h3><table>{facts}</table>" if facts else ""))
    nav = "".join(f'<a href="#run{k}">{esc(s["label"])}</a>' for k, s in enumerate(report["runs"]))
    nav += '<a href="#curves">training curves</a>' if report["curves"] else ""
    nav += '<a href="#side">side by side</a>' if report.get("cross_run") else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(report['title'])}</title>
<style>{_CSS}</style></head><body><h1>{esc(report['title'])}</h1>
<p class=muted>Generated {esc(report['generated'])}. Scores in %, ± one standard error. Δ is the change from the stage
before (the last Δ column: from the first stage to the final model), in points, on the same items, with its 95%
paired-bootstrap interval and p-value (exact McNemar for 0/1 scores,
else the paired bootstrap). <span class="badge sig">significant</span> p &lt; {report['alpha']};
<span class="badge noise">within noise</span> otherwise. Hover a cell for the test and item counts.</p>
<nav>{nav}</nav>{''.join(runs)}{_curves(report, plots)}{_cross(report.get('cross_run'))}
</body></html>
"""
