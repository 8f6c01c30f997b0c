"""The template's intrinsics and order: parameters, Conditions, Ref / GetAtt / Sub / Join / Select /
If against the physical ids known so far, and the order CloudFormation creates resources in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bridge_local.cfn.stack import DeployError
from bridge_local.emulator import ACCOUNT_ID

SUB_VAR = re.compile(r"\$\{([^}!]+)\}")


class _NoValue:
    """AWS::NoValue: the property (or list item) it stands for is left out."""


NO_VALUE = _NoValue()


class Resolver:
    """Evaluates the intrinsic functions the template uses against known physical ids."""

    def __init__(self, stack_name: str, region: str, parameters: dict[str, str]) -> None:
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.parameters = parameters
        self.refs: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str]] = {}
        self.conditions: dict[str, bool] = {}

    def evaluate_conditions(self, definitions: Mapping[str, Any]) -> None:
        """The template's Conditions section (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition)."""
        pending = dict(definitions)

        def truth(expression: Any) -> bool:
            (key, arg), *_ = expression.items()
            if key == "Condition":
                if arg not in self.conditions:
                    self.conditions[arg] = truth(pending[arg])
                return self.conditions[arg]
            if key == "Fn::Equals":
                return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
            if key == "Fn::Not":
                return not truth(arg[0])
            if key == "Fn::And":
                return all(truth(a) for a in arg)
            if key == "Fn::Or":
                return any(truth(a) for a in arg)
            raise DeployError(f"condition function {key} is not supported by the local deployer")

        for name in pending:
            truth({"Condition": name})

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        for table in (self.pseudo, self.parameters, self.refs):
            if name in table:
                return table[name]
        raise DeployError(f"Ref to {name!r} before it has a physical id")

    def get_att(self, logical_id: str, attr: str) -> str:
        try:
            return self.attrs[logical_id][attr]
        except KeyError:
            raise DeployError(f"Fn::GetAtt {logical_id}.{attr} is not known locally") from None

    def sub(self, template: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical_id, attr = name.split(".", 1)
                return self.get_att(logical_id, attr)
            return self.ref(name)

        # ${!Literal} stays as ${Literal}, as in CloudFormation.
        return SUB_VAR.sub(replace, template).replace("${!", "${")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Fn::If":
                name, when_true, when_false = arg
                if name not in self.conditions:
                    raise DeployError(f"Fn::If names an unknown condition {name!r}")
                return self.resolve(when_true if self.conditions[name] else when_false)
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attr)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return self.sub(arg[0], arg[1])
                return self.sub(arg, {})
            if key == "Fn::Join":
                return str(arg[0]).join(str(self.resolve(v)) for v in self.resolve(arg[1]))
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key.startswith("Fn::") or key == "Condition":
                raise DeployError(f"intrinsic {key} is not supported by the local deployer")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}


def as_env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    declared = template.get("Parameters", {}) or {}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise DeployError(f"unknown parameter override(s): {sorted(unknown)}")
    for name, spec in declared.items():
        if name in overrides:
            values[name] = as_env_string(overrides[name])
        elif "Default" in spec:
            values[name] = as_env_string(spec["Default"])
        else:
            raise DeployError(f"parameter {name} has no default and no override")
        allowed = spec.get("AllowedValues")
        if allowed and values[name] not in [str(a) for a in allowed]:
            raise DeployError(f"parameter {name}={values[name]!r} not in {allowed}")
    return values


def references(value: Any) -> set[str]:
    """Logical ids (and pseudo parameters) a property value refers to."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0])
            elif key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                found |= {name.split(".", 1)[0] for name in SUB_VAR.findall(str(text)) if name not in variables}
                found |= references(variables)
            else:
                found |= references(arg)
    return found


def creation_order(resources: Mapping[str, Any]) -> list[str]:
    """Every resource after those it refers to or depends on (CloudFormation's order)."""
    needs: dict[str, set[str]] = {}
    for logical_id, res in resources.items():
        depends = res.get("DependsOn") or []
        depends = [depends] if isinstance(depends, str) else list(depends)
        needs[logical_id] = (references(res.get("Properties") or {}) | set(depends)) & set(resources)
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(resources):
        ready = sorted(lid for lid in resources if lid not in done and needs[lid] <= done)
        if not ready:
            stuck = sorted(lid for lid in resources if lid not in done)
            raise DeployError(f"resources refer to each other in a circle: {stuck}")
        order.extend(ready)
        done.update(ready)
    return order
