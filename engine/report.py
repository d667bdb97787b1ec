"""Reports: an evaluation as data (a pydantic model with its schema) and its renderings."""

from __future__ import annotations

import html
import json
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from . import markdown as md
from .diagnostics import printable
from .evaluator import Evaluation, format_value
from .facts import json_digest

__all__ = [
    "REPORT_SCHEMA_ID", "Report", "RuleReport", "EvidenceItem", "PolicyRef", "build_report",
    "report_json", "render_markdown", "render_html", "render_table", "seal",
]

REPORT_SCHEMA_ID = "originality.report/1"
Outcome = Literal["pass", "fail", "indeterminate"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyRef(_Strict):
    id: str
    version: str
    digest: str = Field(description="sha256 over the policy file and the versions it extends")
    title: Optional[str] = None
    effective: Optional[str] = None


class EvidenceItem(_Strict):
    path: str = Field(description="where the fact is in the fact sheet")
    value: Any = Field(description="its value; null when unknown")
    detector: Optional[str] = Field(default=None, description="detector@version that wrote it")
    method: Optional[str] = Field(default=None, description="how the detector decided it")


class RuleReport(_Strict):
    id: str
    level: Literal["blocking", "advisory"]
    outcome: Outcome
    title: Optional[str] = None
    cite: Optional[str] = None
    declared_in: Optional[str] = Field(default=None, description="policy version the rule comes from")
    message: str
    evidence: list[EvidenceItem]
    unknown: list[str] = Field(default_factory=list, description="facts whose absence left the rule open")
    witnesses: list[str] = Field(default_factory=list, description="list items that decided the rule")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters the rule used")


class Report(_Strict):
    schema_: Literal["originality.report/1"] = Field(alias="schema")
    verdict: Outcome
    policy: PolicyRef
    subject: dict[str, Any]
    facts_digest: str
    params: dict[str, Any] = Field(description="parameter values used")
    overrides: dict[str, Any] = Field(description="parameters set on the command line")
    summary: dict[str, int]
    rules: list[RuleReport]
    report_digest: str = Field(description="sha256 of this report without this field")


def build_report(ev: Evaluation, overrides: dict[str, Any] | None = None) -> dict:
    """The report as plain JSON data (sorted, deterministic, sealed with its digest)."""
    policy = ev.policy
    rules_by_id = {r.id: r for r in policy.rules}
    rules = []
    summary = {"pass": 0, "fail": 0, "indeterminate": 0}
    for r in ev.rules:
        summary[r.outcome] += 1
        rule = rules_by_id[r.id].rule
        rules.append({
            "id": r.id, "level": r.level, "outcome": r.outcome, "title": pick_title(rule.titles, ev.lang),
            "cite": rule.cite,
            "declared_in": rule.origin, "message": r.message,
            "evidence": [{"path": e.path, "value": e.value, "detector": e.detector, "method": e.method}
                         for e in r.evidence],
            "unknown": list(r.unknown), "witnesses": list(r.witnesses),
            "params": {k: _jsonable(v) for k, v in r.params},
        })
    data = {
        "schema": REPORT_SCHEMA_ID,
        "verdict": ev.verdict,
        "policy": {"id": policy.id, "version": policy.version, "digest": policy.digest,
                   "title": pick_title(policy.titles, ev.lang), "effective": policy.effective},
        "subject": ev.sheet.subject,
        "facts_digest": ev.sheet.digest,
        "params": {k: _jsonable(v) for k, v in sorted(ev.params.items())},
        "overrides": {k: _jsonable(v) for k, v in sorted((overrides or {}).items())},
        "summary": summary,
        "rules": rules,
    }
    return seal(data)


def pick_title(titles, lang: str | None) -> str | None:
    """The title in the asked language, else the unmarked or English one, else any."""
    for want in (lang, None, "en"):
        for t in titles:
            if t.lang == want:
                return t.text
    return titles[0].text if titles else None


def seal(data: dict, field: str = "report_digest") -> dict:
    body = {k: v for k, v in data.items() if k != field}
    data = dict(body)
    data[field] = json_digest(body)
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def report_json(report: dict) -> str:
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


_MARK = {"pass": "✅ pass", "fail": "❌ fail", "indeterminate": "❔ indeterminate"}


def render_markdown(report: dict) -> str:
    p = report["policy"]
    subject = md.text(str(report["subject"].get("name", "?")))
    lines = [
        f"# {subject}: {report['verdict'].upper()}",
        "",
        f"Policy {md.code(p['id'])} version {md.code(p['version'])}"
        + (f" — {md.text(p['title'])}" if p.get("title") else ""),
        "",
        f"- policy digest: `{p['digest']}`",
        f"- fact sheet digest: `{report['facts_digest']}`",
        f"- report digest: `{report['report_digest']}`",
    ]
    if report["overrides"]:
        lines.append("- parameters set: " + ", ".join(md.code(f"{k} = {_md_value(v)}")
                                                    for k, v in report["overrides"].items()))
    s = report["summary"]
    lines += ["", f"{s['fail']} failed, {s['indeterminate']} indeterminate, {s['pass']} passed.", "",
              "| rule | level | outcome | why |", "|---|---|---|---|"]
    for r in report["rules"]:
        why = r["message"] or (r.get("title") or "")
        lines.append(f"| {md.code(r['id'])} | {r['level']} | {_MARK[r['outcome']]} | {md.cell(why)} |")
    for r in report["rules"]:
        lines += ["", f"## {md.code(r['id'])} — {_MARK[r['outcome']]}", ""]
        if r.get("title"):
            lines.append(f"**{md.text(r['title'])}**  ")
        lines.append(f"Level: {r['level']}" + (f" · Source: {md.text(r['cite'])}" if r.get("cite") else ""))
        if r["message"]:
            lines += ["", md.paragraph(r["message"])]
        if r["params"]:
            lines += ["", "Parameters: " + ", ".join(md.code(f"{k} = {_md_value(v)}") for k, v in r["params"].items())]
        if r["evidence"]:
            lines += ["", "| fact | value | detector | method |", "|---|---|---|---|"]
            for e in r["evidence"]:
                lines.append(f"| {md.code(e['path'])} | {md.cell(format_value(e['value']))} | "
                             f"{md.cell(e['detector'] or '')} | {md.cell(e['method'] or '')} |")
    return "\n".join(lines) + "\n"


def _md_value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else f'"{v}"'


def render_html(report: dict) -> str:
    p = report["policy"]

    def e(text: str) -> str:
        return html.escape(printable(text))

    rows = []
    for r in report["rules"]:
        ev = "".join(
            f"<tr><td><code>{e(x['path'])}</code></td><td>{e(format_value(x['value']))}</td>"
            f"<td>{e(x['detector'] or '')}</td><td>{e(x['method'] or '')}</td></tr>" for x in r["evidence"])
        rows.append(
            f"<section class='rule {r['outcome']}'><h2><code>{e(r['id'])}</code> — {e(r['outcome'])}</h2>"
            f"<p><b>{e(r.get('title') or '')}</b></p><p>level {e(r['level'])}"
            f"{' · source: ' + e(r['cite']) if r.get('cite') else ''}</p>"
            f"<p>{e(r['message'])}</p>"
            + (f"<table><tr><th>fact</th><th>value</th><th>detector</th><th>method</th></tr>{ev}</table>" if ev else "")
            + "</section>")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{e(report['subject'].get('name', ''))}: {e(report['verdict'])}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        ".fail h2{color:#b00}.pass h2{color:#070}.indeterminate h2{color:#a60}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}</style></head><body>"
        f"<h1>{e(report['subject'].get('name', ''))}: {e(report['verdict'].upper())}</h1>"
        f"<p>policy <code>{e(p['id'])}</code> version <code>{e(p['version'])}</code> {e(p.get('title') or '')}</p>"
        f"<p>policy digest <code>{e(p['digest'])}</code><br>fact sheet digest <code>{e(report['facts_digest'])}</code>"
        f"<br>report digest <code>{e(report['report_digest'])}</code></p>"
        + "".join(rows) + "</body></html>\n")


def render_table(report: dict, console) -> None:
    """Print a report as a rich table to `console`."""
    from rich.markup import escape
    from rich.table import Table

    colour = {"pass": "green", "fail": "red", "indeterminate": "yellow"}
    p = report["policy"]
    console.print(f"[bold]{escape(_clip(printable(str(report['subject'].get('name', '?')))))}[/]: "
                  f"[bold {colour[report['verdict']]}]{report['verdict'].upper()}[/] "
                  f"under {p['id']} {p['version']}")
    table = Table(show_lines=False)
    table.add_column("rule")
    table.add_column("level")
    table.add_column("outcome")
    table.add_column("why", overflow="fold")
    for r in report["rules"]:
        why = r["message"] or (r.get("title") or "")
        table.add_row(r["id"], r["level"], f"[{colour[r['outcome']]}]{r['outcome']}[/]", escape(_clip(printable(why))))
    console.print(table)


# A terminal table lays out its cells in time that grows faster than their length: a
# text past this is cut there (JSON, Markdown and HTML reports keep it whole).
_CLIP = 2_000


def _clip(text: str) -> str:
    return text if len(text) <= _CLIP else text[:_CLIP] + f"… ({len(text) - _CLIP:,} more characters)"
