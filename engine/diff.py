"""Verdict diffs: what changes between two policy versions over many fact sheets, and why."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Optional

from pydantic import Field

from . import markdown as md
from .checker import CheckedPolicy, CheckedRule
from .diagnostics import printable
from .evaluator import Program
from .facts import FactSheet, json_digest
from .formatter import format_expr
from .report import _Strict

__all__ = ["DIFF_SCHEMA_ID", "Diff", "RuleChange", "diff_digest", "diff_rules", "diff_verdicts", "render_diff_markdown",
           "render_diff_table"]

DIFF_SCHEMA_ID = "originality.diff/1"
Outcome = Literal["pass", "fail", "indeterminate"]


class DiffPolicy(_Strict):
    id: str
    version: str
    digest: str
    params: dict[str, Any] = Field(description="parameter values used")


class DiffRule(_Strict):
    id: str
    change: Literal["added", "removed", "changed", "unchanged"]
    details: list[str]


class DiffSummary(_Strict):
    sheets: int
    verdicts_changed: int
    transitions: dict[str, int] = Field(description="`old → new` verdict: number of sheets")
    rule_outcomes_changed: dict[str, dict[str, int]] = Field(
        description="rule id: {`old → new` outcome: number of sheets}")


class DiffSheetRule(_Strict):
    id: str
    level: Literal["blocking", "advisory"] = Field(description="the rule's level in the new version (the old one "
                                                               "when the rule is removed)")
    old_level: Optional[Literal["blocking", "advisory"]] = Field(
        description="its level in the old version; null when absent there")
    old: Optional[Outcome] = Field(description="null when the rule is absent from the old version")
    new: Optional[Outcome] = Field(description="null when the rule is absent from the new version")
    why: list[str]
    message: Optional[str] = None


class DiffSheet(_Strict):
    sheet: str
    subject: Optional[str]
    facts_digest: str
    old: Outcome
    new: Outcome
    verdict_changed: bool
    rules: list[DiffSheetRule]


class Diff(_Strict):
    """`originality diff --format json`: verdicts between two policy versions."""

    schema_: Literal["originality.diff/1"] = Field(alias="schema")
    old: DiffPolicy
    new: DiffPolicy
    rules: list[DiffRule]
    summary: DiffSummary
    sheets: list[DiffSheet] = Field(description="sheets whose verdict changes (with --every-change: also those "
                                                "where only a rule's outcome changes)")
    diff_digest: str = Field(description="sha256 of this diff's canonical JSON without this field and without "
                                         "the sheets' paths (see `diff_digest`)")


@dataclass(frozen=True)
class RuleChange:
    """How one rule differs between the versions: added, removed, changed or unchanged."""

    id: str
    kind: str
    details: tuple[str, ...] = ()


def _signature(r: CheckedRule) -> dict:
    rule = r.rule
    return {
        "level": r.level,
        "condition": f"{rule.mode} {format_expr(rule.condition)}" if rule.condition else None,
        "messages": [(lang, t.raw) for lang, t in rule.messages],
        "titles": [(t.lang, t.text) for t in rule.titles],
        "cite": rule.cite,
        "notes": list(rule.notes),
    }


def diff_rules(old: CheckedPolicy, new: CheckedPolicy, old_params: dict, new_params: dict) -> dict[str, RuleChange]:
    """Rule-level changes from `old` to `new`, parameter values included."""
    before = {r.id: r for r in old.rules}
    after = {r.id: r for r in new.rules}
    out: dict[str, RuleChange] = {}
    for rid in sorted(set(before) | set(after)):
        if rid not in after:
            out[rid] = RuleChange(rid, "removed", (f"rule removed in {new.version}",))
            continue
        if rid not in before:
            out[rid] = RuleChange(rid, "added", (f"rule added in {new.version}",))
            continue
        a, b = _signature(before[rid]), _signature(after[rid])
        details = []
        if a["level"] != b["level"]:
            details.append(f"level {a['level']} → {b['level']}")
        if a["condition"] != b["condition"]:
            details.append(f"condition changed: now `{b['condition']}`")
        for name in sorted(set(after[rid].params_used) | set(before[rid].params_used)):
            va, vb = old_params.get(name, None), new_params.get(name, None)
            if va != vb:
                details.append(f"parameter `{name}` {_show(va)} → {_show(vb)}")
        if any(a[k] != b[k] for k in ("messages", "titles", "cite", "notes")):
            details.append("wording changed")
        out[rid] = RuleChange(rid, "changed" if details else "unchanged", tuple(details))
    return out


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, ensure_ascii=False)


def diff_verdicts(old: Program, new: Program, sheets: Iterable[FactSheet], every_change: bool = False) -> dict:
    """Evaluate every sheet under both programs; the result is plain JSON data.

    `sheets` lists the sheets whose verdict changes (with `every_change`, also those
    where only some rule's outcome does); the summary counts every change."""
    changes = diff_rules(old.policy, new.policy, old.params, new.params)
    transitions: dict[str, int] = {}
    rule_counts: dict[str, dict[str, int]] = {}
    changed_sheets = []
    total = 0
    verdicts_changed = 0
    for sheet in sheets:
        total += 1
        a, b = old.evaluate(sheet), new.evaluate(sheet)
        key = f"{a.verdict} → {b.verdict}"
        transitions[key] = transitions.get(key, 0) + 1
        ra = {r.id: r for r in a.rules}
        rb = {r.id: r for r in b.rules}
        rules = []
        for rid in sorted(set(ra) | set(rb)):
            oa = ra[rid].outcome if rid in ra else None
            ob = rb[rid].outcome if rid in rb else None
            la = ra[rid].level if rid in ra else None
            lb = rb[rid].level if rid in rb else None
            if oa == ob and (la == lb or oa == "pass"):
                continue  # (a rule whose level changes moves the verdict with the same outcome)
            if oa != ob:
                counts = rule_counts.setdefault(rid, {})
                ckey = f"{oa or 'absent'} → {ob or 'absent'}"
                counts[ckey] = counts.get(ckey, 0) + 1
            change = changes[rid]
            why = list(change.details) if change.kind != "unchanged" else ["rule unchanged; other facts decide"]
            entry = {"id": rid, "old": oa, "new": ob, "why": why, "level": lb or la, "old_level": la}
            if ob is not None and rb[rid].message:
                entry["message"] = rb[rid].message
            elif oa is not None and ra[rid].message:
                entry["message"] = ra[rid].message
            rules.append(entry)
        if a.verdict != b.verdict:
            verdicts_changed += 1
        if a.verdict != b.verdict or (every_change and rules):
            changed_sheets.append({
                "sheet": sheet.name, "subject": sheet.subject.get("name"), "facts_digest": sheet.digest,
                "old": a.verdict, "new": b.verdict, "verdict_changed": a.verdict != b.verdict, "rules": rules,
            })
    changed_sheets.sort(key=lambda s: (not s["verdict_changed"], s["sheet"]))
    body = {
        "schema": DIFF_SCHEMA_ID,
        "old": _policy_ref(old),
        "new": _policy_ref(new),
        "rules": [{"id": c.id, "change": c.kind, "details": list(c.details)} for c in changes.values()],
        "summary": {
            "sheets": total,
            "verdicts_changed": verdicts_changed,
            "transitions": dict(sorted(transitions.items())),
            "rule_outcomes_changed": {k: dict(sorted(v.items())) for k, v in sorted(rule_counts.items())},
        },
        "sheets": changed_sheets,
    }
    return {**body, "diff_digest": diff_digest(body)}


def diff_digest(diff: dict) -> str:
    """sha256 of a diff's canonical JSON, without its digest and without the paths its
    sheets were read from (each is known by its facts digest): the same sheets compared
    give the same digest wherever they lie and however their paths are spelled."""
    body = {k: v for k, v in diff.items() if k != "diff_digest"}
    body["sheets"] = sorted(({k: v for k, v in x.items() if k != "sheet"} for x in diff["sheets"]),
                            key=lambda x: (not x["verdict_changed"], x["facts_digest"], str(x["subject"])))
    return json_digest(body)


def _policy_ref(program: Program) -> dict:
    p = program.policy
    return {"id": p.id, "version": p.version, "digest": p.digest,
            "params": {k: _plain(v) for k, v in sorted(program.params.items())}}


def _plain(value: Any) -> Any:
    """Parameter values as JSON shows them: lists for tuples, 2 for 2.0."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _deciding(rules: list[dict]) -> list[dict]:
    """The rule changes that can move a verdict: blocking on either side, and not passing
    on one side."""
    quiet = {None, "pass"}
    return [r for r in rules if "blocking" in (r["level"], r.get("old_level"))
            and not ({r["old"], r["new"]} <= quiet)]


def render_diff_markdown(diff: dict, limit: int = 200) -> str:
    old, new = diff["old"], diff["new"]
    s = diff["summary"]
    lines = [
        f"# Verdicts from {md.code(old['id'])} {md.text(old['version'])} to {md.text(new['version'])}",
        "",
        f"{s['verdicts_changed']} of {s['sheets']} fact sheets change verdict.",
        "",
        f"- old policy digest: `{old['digest']}`",
        f"- new policy digest: `{new['digest']}`",
        f"- diff digest: `{diff['diff_digest']}`",
        "",
        "| old → new verdict | sheets |", "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in s["transitions"].items()]
    lines += ["", "## Rules", "", "| rule | change | details | outcomes changed |", "|---|---|---|---|"]
    for r in diff["rules"]:
        moved = s["rule_outcomes_changed"].get(r["id"], {})
        lines.append(f"| {md.code(r['id'])} | {r['change']} | {md.cell('; '.join(r['details']))} | "
                     f"{', '.join(f'{k}: {v}' for k, v in moved.items())} |")
    shown = [x for x in diff["sheets"] if x["verdict_changed"]][:limit]
    if shown:
        lines += ["", "## Sheets that change verdict", ""]
        for x in shown:
            lines.append(f"- {md.code(x['sheet'])} ({md.text(str(x['subject']))}): {x['old']} → {x['new']}")
            for r in _deciding(x["rules"]):
                why = md.text("; ".join(r["why"]))
                msg = f" — {md.text(r['message'])}" if r.get("message") else ""
                lines.append(f"  - {md.code(r['id'])} {r['old'] or 'absent'} → {r['new'] or 'absent'} ({why}){msg}")
        rest = s["verdicts_changed"] - len(shown)
        if rest > 0:
            lines.append(f"- … and {rest} more (see `--format json`)")
    kept = [x for x in diff["sheets"] if not x["verdict_changed"]]  # listed with --every-change
    if kept:
        lines += ["", "## Sheets whose verdict stays but a rule's outcome changes", ""]
        for x in kept[:limit]:
            moved = ", ".join(f"{md.code(r['id'])} {r['old'] or 'absent'} → {r['new'] or 'absent'}" for r in x["rules"])
            lines.append(f"- {md.code(x['sheet'])} ({md.text(str(x['subject']))}): {x['new']}; {moved}")
        if len(kept) > limit:
            lines.append(f"- … and {len(kept) - limit} more (see `--format json`)")
    return "\n".join(lines) + "\n"


def render_diff_table(diff: dict, console, limit: int = 50) -> None:
    from rich.markup import escape
    from rich.table import Table

    s = diff["summary"]
    console.print(f"[bold]{s['verdicts_changed']}[/] of {s['sheets']} fact sheets change verdict "
                  f"from {diff['old']['version']} to {diff['new']['version']}")
    t = Table(title="verdicts")
    t.add_column("old → new")
    t.add_column("sheets", justify="right")
    for k, v in s["transitions"].items():
        t.add_row(k, str(v))
    console.print(t)
    r = Table(title="rules")
    r.add_column("rule")
    r.add_column("change")
    r.add_column("outcomes changed", overflow="fold")
    for rule in diff["rules"]:
        moved = s["rule_outcomes_changed"].get(rule["id"], {})
        r.add_row(rule["id"], rule["change"], ", ".join(f"{k}: {v}" for k, v in moved.items()))
    console.print(r)
    shown = [x for x in diff["sheets"] if x["verdict_changed"]][:limit]
    for x in shown:
        reasons = ", ".join(f"{r['id']} {r['old'] or 'absent'}→{r['new'] or 'absent'}" for r in _deciding(x["rules"]))
        console.print(f"  {escape(printable(x['sheet']))}: {x['old']} → {x['new']}  ({reasons})")
    if s["verdicts_changed"] > len(shown):
        console.print(f"  … and {s['verdicts_changed'] - len(shown)} more (see --format json)")
    kept = [x for x in diff["sheets"] if not x["verdict_changed"]]  # listed with --every-change
    if kept:
        console.print("verdict kept, a rule's outcome changed:")
        for x in kept[:limit]:
            moved = ", ".join(f"{r['id']} {r['old'] or 'absent'}→{r['new'] or 'absent'}" for r in x["rules"])
            console.print(f"  {escape(printable(x['sheet']))}: {x['new']}  ({moved})")
        if len(kept) > limit:
            console.print(f"  … and {len(kept) - limit} more (see --format json)")
