"""``report.md``: the run report dict (:mod:`tulu.report.runreport`) as markdown; plots as PNG files beside it."""

from __future__ import annotations

from typing import Any

from tulu.report.samples import verdict_mark
from tulu.report.significance import fmt_delta, fmt_p


def _value(v: dict | None) -> str:
    if v is None:
        return "—"
    return f"{v['value']:.1f}" + (f" ± {v['stderr']:.1f}" if v.get("stderr") is not None else "")


def _esc(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def eval_table(section: dict[str, Any]) -> list[str]:
    stages = section["stages"]
    lines = []
    for suite in section["eval"]["suites"]:
        overall = any("overall" in r and r["overall"] is not None for r in suite["rows"])
        pairs = [*zip(stages, stages[1:])] + ([(stages[0], stages[-1])] if overall else [])
        lines += [f"#### {suite['suite']} suite", "",
                  "| task | metric | " + " | ".join(stages) + " | " +
                  " | ".join(f"Δ {a}→{b} [95% CI] p" for a, b in pairs) + " | contamination |",
                  "|---|---|" + "---:|" * len(stages) + "---|" * len(pairs) + "---|"]
        for r in suite["rows"]:
            vals = " | ".join(_value(v) for v in r["values"])
            deltas = " | ".join(fmt_delta(d) or "—" for d in r["deltas"][1:] + ([r.get("overall")] if overall else []))
            name = f"**{r['task']}**" if r["task"].endswith("average") else r["task"]
            lines.append(f"| {name} | {_esc(r['metric'])} | {vals} | {deltas} | {_esc(r.get('contamination') or '')} |")
        notes = sorted({f"{r['task']}: {r['test_note']}" for r in suite["rows"] if r.get("test_note")})
        skipped = sorted({f"{r['task']}: {n.removeprefix(r['task'] + ': ')}" for r in suite["rows"] for n in r["notes"] if n})
        lines += [""] + [f"- {n}" for n in notes + skipped] + ([""] if notes or skipped else [])
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report['title']}", "", f"Generated {report['generated']}. Scores in %, ± one standard error. "
             f"Δ: change from the stage before (and, last, from the first stage to the final model), in points, "
             f"paired on the same items, with its 95% bootstrap "
             f"interval and p-value (exact McNemar for 0/1 scores, else the paired bootstrap); "
             f"**significant** means p < {report['alpha']}, \"within noise\" means it is not.", ""]
    for sec in report["runs"]:
        lines += [f"## Run: {sec['label']}", ""]
        if sec.get("root"):
            lines += [f"Folder: `{sec['root']}`", ""]
        lines += ["### Verdict", ""] + [f"- {s}" for s in sec["verdict"]] + [""]
        lines += ["### Evaluation", ""]
        if sec["eval"]["limit"]:
            lines += ["Items: " + " / ".join(sec["eval"]["limit"])
                      + (f"; generation capped at {', '.join(map(str, sec['eval']['max_new_tokens_cap']))} tokens"
                         if sec["eval"]["max_new_tokens_cap"] else "") + ".", ""]
        lines += eval_table(sec)
        if sec.get("headline_plot"):
            lines += [f"![headline metrics]({sec['headline_plot']})", ""]
        h = sec.get("rlvr_heldout")
        if h:
            lines += ["### RLVR held-out check (greedy, generator prompts never trained on)", "",
                      "| group | n | before | after | Δ [95% CI] | improved / worsened | McNemar p |",
                      "|---|---:|---:|---:|---|---:|---:|"]
            for r in h["rows"]:
                disc = r.get("discordant") or ("", "")
                lines.append(f"| {r['group']} | {r['n']} | {r['before']:.1f} | {r['after']:.1f} | "
                             f"{r['delta']:+.1f} [{r['low']:+.1f}, {r['high']:+.1f}] | {disc[0]} / {disc[1]} | "
                             f"{fmt_p(r['p_value'])} {'**significant**' if r['significant'] else 'within noise'} |")
            lines.append("")
        c = sec.get("contamination")
        if c:
            lines += ["### Contamination (decontamination stage)", "", c["settings"] + f"; mode `{c['mode']}`.", "",
                      "| dataset | instances | contaminating | removed | flagged by | " + " | ".join(c["benchmarks"]) + " |",
                      "|---|---:|---:|---:|---|" + "---:|" * len(c["benchmarks"])]
            for r in c["rows"]:
                cells = " | ".join((f"**{x['hit']}/{x['total']}**" if x["flagged"] else f"{x['hit']}/{x['total']}")
                                   if x["hit"] else "0" for x in r["cells"].values())
                lines.append(f"| {r['dataset']} | {r['instances']} | {r['contaminating']} | "
                             f"{'' if r['removed'] is None else r['removed']} | {', '.join(r['flagged_by']) or '—'} | {cells} |")
            if c["skipped"]:
                lines += ["", "Not checked (did not load): " + ", ".join(sorted(c["skipped"])) + "."]
            lines.append("")
        if sec["samples"]:
            lines += ["### Samples", "", "The same prompts answered by every stage's model (items whose verdict "
                      "differs between stages first).", ""]
            for s in sec["samples"]:
                lines += [f"**{s['task']} #{s['id']}** ({s['metric']}; gold: {_esc(s['gold'])})", "",
                          "> " + _esc(s["prompt"]), ""]
                for a in s["answers"]:
                    lines.append(f"- *{a['stage']}* — {verdict_mark(a['verdict'])}"
                                 f"{' (hit the token cap)' if a['finish'] == 'length' else ''}: {_esc(a['response'])}")
                lines.append("")
        if sec["facts"]:
            lines += ["### Run facts", "", "| | |", "|---|---|"] + [f"| {k} | {_esc(v)} |" for k, v in sec["facts"]] + [""]
    if report["curves"]:
        lines += ["## Training curves", ""]
        for stage, cv in report["curves"].items():
            lines += [f"### {stage.upper()}", ""] + ([f"![{stage} curves]({cv['plot']})", ""] if cv["plot"] else []) + [
                      "| run | metric | points | first | last | first-quarter mean | last-quarter mean |",
                      "|---|---|---:|---:|---:|---:|---:|"]
            lines += [f"| {r['run']} | {r['metric']} | {r['points']} | {r['first']:.4g} | {r['last']:.4g} | "
                      f"{r['first_quarter']:.4g} | {r['last_quarter']:.4g} |" for r in cv["rows"]] + [""]
    x = report.get("cross_run")
    if x:
        lines += ["## Runs side by side", "", "Each run against the first, paired on the items both answered.", "",
                  "| stage | task | metric | " + " | ".join(x["labels"]) + " | " +
                  " | ".join(f"Δ {lb} − {x['labels'][0]}" for lb in x["labels"][1:]) + " |",
                  "|---|---|---|" + "---:|" * len(x["labels"]) + "---|" * (len(x["labels"]) - 1)]
        for r in x["rows"]:
            lines.append(f"| {r['stage']} | {r['task']} | {r['metric']} | " + " | ".join(_value(v) for v in r["values"])
                         + " | " + " | ".join(fmt_delta(d) or "—" for d in r["deltas"][1:]) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
