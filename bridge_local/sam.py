"""template.yaml as AWS receives it: SAM's own transform (aws-sam-translator), run offline.

`sam deploy` uploads local code to S3 and CloudFormation runs the `AWS::Serverless-2016-10-31`
transform. Here local paths stand in for the uploads (an `s3://local-code/<path>` location that
`Translated.code_dir` maps back), the state machine's definition file is inlined (so its
substitutions reach the translated `DefinitionString`), and AWS managed policy names resolve from
the translator's bundled list, so no AWS call is needed.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml
from cfnlint.decode import decode_str

LOCAL_CODE_BUCKET = "local-code"
_LOCAL_CODE_KEYS = {"CodeUri": "AWS::Serverless::Function", "ContentUri": "AWS::Serverless::LayerVersion"}


class TemplateError(RuntimeError):
    """template.yaml cannot be read or SAM's transform refuses it (the message lists why)."""


@dataclass(frozen=True)
class Translated:
    """The CloudFormation template SAM's transform makes of template.yaml, and where its code lives."""

    template: dict[str, Any]
    root: Path  # the directory template.yaml is in

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template.get("Resources") or {})

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {logical_id: res for logical_id, res in self.resources.items() if res.get("Type") == kind}

    def code_dir(self, location: Mapping[str, Any]) -> Path:
        """The local directory behind a translated `Code` / `Content` location."""
        if location.get("S3Bucket") != LOCAL_CODE_BUCKET:
            raise TemplateError(f"code at {dict(location)} is not local")
        return (self.root / str(location["S3Key"])).resolve()


def load_template(path: Path) -> dict[str, Any]:
    """template.yaml as plain JSON-able data (short-form intrinsics expanded)."""
    template, matches = decode_str(path.read_text(encoding="utf-8"))
    if template is None:
        raise TemplateError(f"cannot parse {path}: {matches}")
    return json.loads(json.dumps(template))


def _stage_local_code(template: dict[str, Any], root: Path) -> None:
    """Point local CodeUri/ContentUri at stand-in S3 locations and inline state machine definitions."""
    for res in (template.get("Resources") or {}).values():
        props = res.get("Properties") or {}
        for key, kind in _LOCAL_CODE_KEYS.items():
            if res.get("Type") == kind and isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://{LOCAL_CODE_BUCKET}/{props[key].rstrip('/')}/"
        if res.get("Type") == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            props["Definition"] = yaml.safe_load((root / props.pop("DefinitionUri")).read_text(encoding="utf-8"))


def translate(
    template_path: Path,
    parameters: Mapping[str, str],
    *,
    region: str,
    account_id: str,
    stack_name: str,
    partition: str = "aws",
) -> Translated:
    """Run SAM's transform on the template with these parameter values (defaults filled in by the caller)."""
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import undo_mark_unicode_str_in_template

    path = Path(template_path).resolve()
    template = load_template(path)
    _stage_local_code(template, path.parent)
    values = {
        **parameters,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::Partition": partition,
        "AWS::StackName": stack_name,
    }
    # The translator warns about feature toggles only its hosted service has; nothing to act on here.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    managed = get_bundled_managed_policy_map(partition) or {}
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    try:
        out = translator.translate(
            copy.deepcopy(template), parameter_values=values, get_managed_policy_map=lambda: managed
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(str(cause) for cause in exc.causes)
        raise TemplateError(f"SAM's transform refused {path.name}: {causes}") from exc
    return Translated(template=undo_mark_unicode_str_in_template(out), root=path.parent)
