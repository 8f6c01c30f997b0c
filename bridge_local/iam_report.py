"""Least privilege, measured: what each role was granted, what it used, and why the rest stays.

The grants come from SAM's translation of template.yaml (inline statements, SAM's policy
templates and the AWS managed policies it attaches, whose documents moto ships). The use comes
from the embedded IAM's decisions during a test run (`bridge_local.iam`, written per process to
`BRIDGE_IAM_USAGE_DIR`). A grant no call matched must have a reason in `docs/unused-grants.yaml`
(per role, or `"*"` for every role); `--strict` fails when one has none.

    .venv/bin/python -m bridge_local.iam_report --usage-dir build/iam-usage --markdown docs/permissions.md
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridge_local.emulator import ACCOUNT_ID, DEFAULT_REGION
from bridge_local.sam import translate

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = PROJECT_ROOT / "template.yaml"
REASONS_FILE = PROJECT_ROOT / "docs" / "unused-grants.yaml"
DEFAULT_USAGE_DIR = PROJECT_ROOT / "build" / "iam-usage"


@dataclass(frozen=True)
class Grant:
    """One action a role's policies allow, with where it comes from."""

    role: str  # the role's logical id
    action: str  # may hold wildcards, as written
    resource: str  # as the template writes it (intrinsics shown by name)
    source: str  # the statement's Sid, the policy's name, or the managed policy
    condition: str = ""  # the template Condition that must hold for the grant to exist


def _shown(value: Any) -> str:
    """An intrinsic as a reader of the template would name it."""
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    if not isinstance(value, dict):
        return str(value)
    (key, arg), *_ = value.items()
    if key == "Ref":
        return str(arg)
    if key == "Fn::GetAtt":
        return ".".join(arg) if isinstance(arg, list) else str(arg)
    if key == "Fn::Sub":
        text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
        for name, sub in variables.items():
            text = text.replace("${" + name + "}", _shown(sub))
        return str(text)
    return json.dumps(value)


def _statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement") or []
    return [statements] if isinstance(statements, dict) else list(statements)


def _managed_policy_documents() -> dict[str, dict[str, Any]]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return {name: spec["Document"] for name, spec in json.loads(aws_managed_policies_data).items()}


def grants_of(template: Mapping[str, Any]) -> list[Grant]:
    """Every Allow of every role in the translated template, one per action."""
    managed = _managed_policy_documents()
    found: list[Grant] = []
    for role, res in (template.get("Resources") or {}).items():
        if res.get("Type") != "AWS::IAM::Role":
            continue
        props = res.get("Properties") or {}
        for entry in props.get("Policies") or []:
            condition = ""
            if isinstance(entry, dict) and "Fn::If" in entry:
                condition, entry, _ = entry["Fn::If"]
            for statement in _statements(entry["PolicyDocument"]):
                if statement.get("Effect") != "Allow":
                    continue
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                for action in actions:
                    source = statement.get("Sid") or entry["PolicyName"]
                    found.append(Grant(role, action, _shown(statement.get("Resource")), source, condition))
        for arn in props.get("ManagedPolicyArns") or []:
            name = str(arn).rsplit("/", 1)[-1]
            for statement in _statements(managed[name]):
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                for action in actions:
                    found.append(Grant(role, action, _shown(statement.get("Resource")), f"managed: {name}"))
    return found


@dataclass
class Usage:
    allowed: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # role → action → calls
    denied: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def _role_of(role_name: str, roles: Iterable[str]) -> str | None:
    """The logical id a deployed role name was made from (`<stack>-<logical id>`)."""
    matches = [role for role in roles if role_name == role or role_name.endswith(f"-{role}")]
    return max(matches, key=len) if matches else None


def load_usage(directory: Path, roles: Iterable[str]) -> Usage:
    roles = list(roles)
    usage = Usage()
    for path in sorted(directory.glob("usage-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            role = _role_of(record["role_name"], roles)
            if role is None:
                continue  # a role of a test's own template
            counts = usage.allowed if record["allowed"] else usage.denied
            counts[role][record["action"]] += int(record["count"])
    return usage


def load_reasons(path: Path = REASONS_FILE) -> dict[str, dict[str, str]]:
    """Role (or "*") → action pattern → why the grant stays although no local call uses it."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {role: {str(k): str(v) for k, v in (actions or {}).items()} for role, actions in (data or {}).items()}


def reason_for(grant: Grant, reasons: Mapping[str, Mapping[str, str]]) -> str | None:
    for scope in (grant.role, "*"):
        for pattern, reason in (reasons.get(scope) or {}).items():
            if fnmatch.fnmatchcase(grant.action, pattern):
                return reason
    return None


@dataclass(frozen=True)
class RoleReport:
    role: str
    used: dict[str, int]  # action → calls
    unused: list[tuple[Grant, str | None]]  # grant, reason
    denied: dict[str, int]


def build(grants: list[Grant], usage: Usage, reasons: Mapping[str, Mapping[str, str]]) -> list[RoleReport]:
    reports = []
    for role in sorted({g.role for g in grants}):
        used = dict(sorted(usage.allowed.get(role, Counter()).items()))
        unused = [
            (grant, reason_for(grant, reasons))
            for grant in grants
            if grant.role == role and not any(fnmatch.fnmatchcase(action, grant.action) for action in used)
        ]
        reports.append(RoleReport(role, used, unused, dict(usage.denied.get(role, Counter()))))
    return reports


def markdown(reports: list[RoleReport], key_policy: list[str]) -> str:
    lines = [
        "# Permissions: granted, used, and why the rest stays",
        "",
        "Written by `python -m bridge_local.iam_report` from a full test run with IAM enforced",
        "(`./dev test`): each role's calls were checked against its policies as SAM translates them.",
        "",
    ]
    for report in reports:
        lines += [f"## {report.role}", ""]
        used = ", ".join(f"`{action}` ({calls:,})" for action, calls in report.used.items()) or "none"
        lines += [f"Used (calls in the run): {used}", ""]
        if report.unused:
            # One row per policy and reason, its actions together.
            rows: dict[tuple[str, str, str, str], list[str]] = {}
            for grant, reason in report.unused:
                key = (grant.source, grant.resource, grant.condition, reason or "**no reason given**")
                rows.setdefault(key, []).append(f"`{grant.action}`")
            lines += ["| granted, never called | resource | from | why it stays |", "|---|---|---|---|"]
            for (source, resource, condition, reason), actions in rows.items():
                when = f" (when {condition})" if condition else ""
                lines.append(f"| {', '.join(actions)}{when} | {resource} | {source} | {reason} |")
            lines.append("")
        if report.denied:
            denied = ", ".join(f"`{a}` ({n})" for a, n in report.denied.items())
            lines += [
                f"Denied in the run (tests provoke these: a grant taken away, a table that is not there): {denied}",
                "",
            ]
    lines += ["## Who can use the KMS keys (key policies)", "", *key_policy, ""]
    return "\n".join(lines)


def key_policy_summary(template: Mapping[str, Any], grants: list[Grant]) -> list[str]:
    """Who the caller-key KMS key lets decrypt: its key policy, then the IAM grants it delegates to."""
    lines = []
    for logical_id, res in (template.get("Resources") or {}).items():
        if res.get("Type") != "AWS::KMS::Key":
            continue
        for statement in _statements(res["Properties"].get("KeyPolicy") or {}):
            principal = _shown((statement.get("Principal") or {}).get("AWS", statement.get("Principal")))
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            lines.append(
                f"- {logical_id}, statement `{statement.get('Sid', '')}`: {principal} may {', '.join(actions)}"
            )
        users = sorted({(g.role, g.action) for g in grants if g.action.startswith("kms:") and logical_id in g.resource})
        delegated = ", ".join(f"{role} ({action})" for role, action in users) or "nobody"
        lines.append(f"- IAM grants on {logical_id} (the key policy delegates to IAM): {delegated}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--usage-dir", type=Path, default=DEFAULT_USAGE_DIR)
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a grant is unused and has no reason")
    parser.add_argument("--quiet", action="store_true", help="print only what needs attention")
    args = parser.parse_args(argv)

    # Both conditional features on, so every grant the template can make is listed.
    translated = translate(
        args.template,
        {"CallerRouterOneKeys": "allowed"},
        region=DEFAULT_REGION,
        account_id=ACCOUNT_ID,
        stack_name="video-bridge-local",
    ).template
    grants = grants_of(translated)
    usage = load_usage(args.usage_dir, {g.role for g in grants})
    if not any(usage.allowed.values()):
        print(f"no IAM decisions recorded under {args.usage_dir}: run the tests first (./dev test)", file=sys.stderr)
        return 1
    reports = build(grants, usage, load_reasons())
    text = markdown(reports, key_policy_summary(translated, grants))
    if not args.quiet:
        print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    unexplained = [(r.role, g.action) for r in reports for g, reason in r.unused if reason is None]
    if unexplained:
        print(f"\n{len(unexplained)} granted actions are never used and have no reason in {REASONS_FILE.name}:")
        for role, action in unexplained:
            print(f"  {role}: {action}")
    return 1 if args.strict and unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
