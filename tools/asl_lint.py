"""Validate every state machine definition in statemachine/ with asl-validator, as Step Functions reads it.

A definition holds `${Name}` placeholders that CloudFormation fills from its state machine's
DefinitionSubstitutions at deploy. The validator reads raw ASL and checks that each `Resource` is an
ARN, so each placeholder is first replaced by a value of the shape the deploy gives it, worked out
from what its substitution refers to (a function's ARN, a queue's URL, the partition, ...).

    python tools/asl_lint.py <path of the asl-validator executable>

Exits 1 if a definition is invalid or a placeholder cannot be filled.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
DEFINITIONS = ROOT / "statemachine"

# The account the placeholders pretend to deploy to.
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "video-bridge",
    "AWS::URLSuffix": "amazonaws.com",
}
STATE_MACHINE_TYPES = ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class Unfillable(ValueError):
    """A substitution refers to something this script cannot give a plausible value."""


def _arn(service: str, resource: str, *, regional: bool = True) -> str:
    region, account = (PSEUDO["AWS::Region"], PSEUDO["AWS::AccountId"]) if regional else ("", "")
    return f"arn:{PSEUDO['AWS::Partition']}:{service}:{region}:{account}:{resource}"


def _physical_name(logical_id: str) -> str:
    return f"{PSEUDO['AWS::StackName']}-{logical_id}"


def _ref(logical_id: str, template: Mapping[str, Any]) -> str:
    """What `!Ref` gives for a pseudo parameter, a parameter (its default) or a resource (by type)."""
    if logical_id in PSEUDO:
        return PSEUDO[logical_id]
    parameters = template.get("Parameters") or {}
    if logical_id in parameters:
        return str(parameters[logical_id].get("Default", logical_id))
    kind = ((template.get("Resources") or {}).get(logical_id) or {}).get("Type", "")
    name = _physical_name(logical_id)
    refs = {
        "AWS::SNS::Topic": _arn("sns", name),
        "AWS::SQS::Queue": f"https://sqs.{PSEUDO['AWS::Region']}.{PSEUDO['AWS::URLSuffix']}/{PSEUDO['AWS::AccountId']}/{name}",
        "AWS::SecretsManager::Secret": _arn("secretsmanager", f"secret:{name}-AbCdEf"),
        "AWS::KMS::Key": "1234abcd-12ab-34cd-56ef-1234567890ab",
        "AWS::Serverless::StateMachine": _arn("states", f"stateMachine:{name}"),
        "AWS::StepFunctions::StateMachine": _arn("states", f"stateMachine:{name}"),
    }
    if kind in refs:
        return refs[kind]
    if kind:  # tables, buckets, buses, functions: their name
        return name
    raise Unfillable(f"!Ref {logical_id} names nothing in the template")


def _get_att(logical_id: str, attribute: str, template: Mapping[str, Any]) -> str:
    kind = ((template.get("Resources") or {}).get(logical_id) or {}).get("Type", "")
    name = _physical_name(logical_id)
    if attribute in ("Name", "QueueName", "TopicName"):
        return name
    if attribute != "Arn":
        raise Unfillable(f"!GetAtt {logical_id}.{attribute} is not an attribute this script knows")
    arns = {
        "AWS::Serverless::Function": _arn("lambda", f"function:{name}"),
        "AWS::Lambda::Function": _arn("lambda", f"function:{name}"),
        "AWS::SQS::Queue": _arn("sqs", name),
        "AWS::SNS::Topic": _arn("sns", name),
        "AWS::DynamoDB::Table": _arn("dynamodb", f"table/{name}"),
        "AWS::Events::EventBus": _arn("events", f"event-bus/{name}"),
        "AWS::S3::Bucket": _arn("s3", name, regional=False),
        "AWS::KMS::Key": _arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    }
    if kind not in arns:
        raise Unfillable(f"!GetAtt {logical_id}.Arn: no ARN shape known for {kind or 'a missing resource'}")
    return arns[kind]


def plausible(value: Any, template: Mapping[str, Any]) -> str:
    """A value of the shape CloudFormation would give this substitution."""
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, Mapping) and len(value) == 1:
        [(function, argument)] = value.items()
        if function == "Ref":
            return _ref(str(argument), template)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return _get_att(logical_id, attribute, template)
        if function == "Fn::Sub" and isinstance(argument, str):

            def fill(match: re.Match[str]) -> str:
                target = match.group(1)
                if "." in target and target.split(".", 1)[0] not in PSEUDO:
                    return _get_att(*target.split(".", 1), template)
                return _ref(target, template)

            return re.sub(r"\$\{([A-Za-z0-9_:.]+)\}", fill, argument)
    raise Unfillable(f"no plausible value for {json.dumps(value)}")


def substitutions_by_definition(template: Mapping[str, Any]) -> dict[Path, dict[str, str]]:
    """Each definition file a state machine of the template reads, with its placeholders filled."""
    found: dict[Path, dict[str, str]] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        props = resource.get("Properties") or {}
        if resource.get("Type") not in STATE_MACHINE_TYPES or not isinstance(props.get("DefinitionUri"), str):
            continue
        try:
            values = {k: plausible(v, template) for k, v in (props.get("DefinitionSubstitutions") or {}).items()}
        except Unfillable as exc:
            raise Unfillable(f"{logical_id}: {exc}") from exc
        found[(ROOT / props["DefinitionUri"]).resolve()] = values
    return found


def filled(definition: Path, values: Mapping[str, str]) -> str:
    """The definition's text with every placeholder replaced (JSON-escaped in a JSON file)."""
    text = definition.read_text(encoding="utf-8")
    missing = sorted(set(PLACEHOLDER.findall(text)) - set(values))
    if missing:
        raise Unfillable(f"{definition.name}: no DefinitionSubstitutions entry for {', '.join(missing)}")
    as_json = definition.suffix == ".json"
    return PLACEHOLDER.sub(lambda m: json.dumps(values[m.group(1)])[1:-1] if as_json else values[m.group(1)], text)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    validator = argv[1]
    template, problems = decode_str(TEMPLATE.read_text(encoding="utf-8"))
    if template is None:
        print(f"asl: cannot parse {TEMPLATE.name}: {problems}", file=sys.stderr)
        return 1
    template = json.loads(json.dumps(template))  # plain dicts and strings, as written
    definitions = sorted(p for p in DEFINITIONS.glob("*.asl.*") if p.suffix in (".json", ".yaml", ".yml"))
    if not definitions:
        print(f"asl: no *.asl.* definitions in {DEFINITIONS.relative_to(ROOT)}/", file=sys.stderr)
        return 1
    failed = False
    try:
        by_definition = substitutions_by_definition(template)
    except Unfillable as exc:
        print(f"asl: {exc}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="asl-lint-") as scratch:
        for definition in definitions:
            shown = definition.relative_to(ROOT)
            try:
                text = filled(definition, by_definition.get(definition.resolve(), {}))
            except Unfillable as exc:
                print(f"asl: {exc}", file=sys.stderr)
                failed = True
                continue
            copy = Path(scratch) / definition.name
            copy.write_text(text, encoding="utf-8")
            flag = "--json-path" if definition.suffix == ".json" else "--yaml-path"
            try:
                run = subprocess.run([validator, flag, str(copy)], capture_output=True, text=True, check=False)
            except OSError as exc:  # not installed, or not executable: one line, not a traceback
                print(f"asl: cannot run {validator}: {exc.strerror}", file=sys.stderr)
                return 1
            report = (run.stdout + run.stderr).replace(str(copy), str(shown)).strip()
            print(report or f"asl-validator exited {run.returncode} on {shown}")
            failed = failed or run.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
