"""A self-contained HTML page (inline CSS, plot embedded as base64 PNG) comparing eval runs side by side."""

from __future__ import annotations

import base64
import html
import time

from tulu.report.tables import Run, average_rows, comparison_rows, fmt_value

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;font-size:14px}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.up{color:#0a7d28}.down{color:#b3261e}.avg td{font-weight:600;background:#fafafa}.skip{color:#888}
small{color:#666}"""


def _delta_html(d: float | None) -> str:
    if d is None:
        return ""
    cls = "up" if d > 0 else "down" if d < 0 else ""
    return f' <span class="{cls}">({d:+.1f})</span>'


def render_html(runs: list[Run], plot_png: bytes | None = None, title: str = "tulu evaluation") -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(r.label)}<br><small>{esc(str(r.results.get('model', '')))}</small></th>" for r in runs)
    body = []
    for row in comparison_rows(runs):
        cells = []
        for v, d, note, n in zip(row.values, row.deltas, row.notes, row.n):
            if v is None:
                cells.append(f'<td class="num skip" title="{esc(note or "")}">—</td>')
            else:
                cells.append(f'<td class="num">{fmt_value(v)}{_delta_html(d)}<br><small>n={n}</small></td>')
        body.append(f"<tr><td>{esc(row.task)}</td><td>{esc(row.suite)}</td><td>{esc(row.metric)}</td>{''.join(cells)}</tr>")
    for row in average_rows(runs):
        cells = "".join(f'<td class="num" title="{esc(note or "")}">{fmt_value(v)}{_delta_html(d)}</td>'
                        for v, d, note in zip(row.values, row.deltas, row.notes))
        body.append(f'<tr class="avg"><td>{esc(row.task)}</td><td>{esc(row.suite)}</td><td>{esc(row.metric)}</td>{cells}</tr>')
    skipped = sorted({(row.task, note) for row in comparison_rows(runs) for v, note in zip(row.values, row.notes)
                      if v is None and note})
    skip_html = ("<h2>Not run</h2><ul>" + "".join(f"<li><b>{esc(t)}</b>: {esc(n)}</li>" for t, n in skipped) + "</ul>"
                 if skipped else "")
    details = []
    for run in runs:
        rows = "".join(
            f"<tr><td>{esc(name)}</td><td>{esc(k)}</td><td class='num'>{m['value']:.2f} ± {m['stderr']:.2f}</td></tr>"
            for name, t in run.results["tasks"].items() if not t.get("skipped") for k, m in t["metrics"].items())
        details.append(f"<details><summary>All metrics: {esc(run.label)}</summary><table><tr><th>task</th>"
                       f"<th>metric</th><th>value ± s.e.</th></tr>{rows}</table></details>")
    img = (f'<img alt="headline metrics" src="data:image/png;base64,{base64.b64encode(plot_png).decode()}">'
           if plot_png else "")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title><style>{_CSS}</style></head>
<body><h1>{esc(title)}</h1>
<p><small>Generated {time.strftime('%Y-%m-%d %H:%M')}. Scores in %, ± one standard error; in brackets the change
from the column to the left. Hover a dash for the reason a task did not run.</small></p>
<table><tr><th>task</th><th>suite</th><th>metric</th>{head}</tr>{''.join(body)}</table>
{img}{skip_html}{''.join(details)}
</body></html>
"""
