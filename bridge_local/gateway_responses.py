"""API Gateway's own answers (gateway responses), rendered from the API's translated OpenAPI Body.

The input is the `x-amazon-apigateway-gateway-responses` map of the `AWS::ApiGateway::RestApi` Body
that SAM's transform makes (what AWS itself receives), so the local front answers exactly what the
deployed gateway would. The rules followed (API Gateway developer guide, "Gateway response types"
and the `x-amazon-apigateway-gateway-responses` extension):

- a response type the API declares answers with its own status, headers and template;
- an undeclared type falls back to DEFAULT_4XX or DEFAULT_5XX (by the type's default status), and a
  status set on that fallback replaces the type's own;
- with neither, AWS's own answer: the type's default status and `{"message":"<AWS's wording>"}`;
- templates are not VTL: only `$context` variables are substituted, `$context.error.messageString`
  being the message in double quotes;
- response parameters map `gatewayresponse.header.<name>` from a quoted literal or from the request
  (`method.request.header.<name>` and the like), which is how a template can echo request headers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Each type's default status (developer guide) and AWS's own message for it: what a caller sees when
# the API declares neither the type nor a DEFAULT_4XX/5XX. None: AWS sends `"message": null`. The
# messages of types this API cannot meet (signatures, validators, WAF) are best guesses; the
# template's static DEFAULT_4XX/5XX replaces them all anyway.
RESPONSE_TYPES: dict[str, tuple[int, str | None]] = {
    "ACCESS_DENIED": (403, "User is not authorized to access this resource"),
    "API_CONFIGURATION_ERROR": (500, "Internal server error"),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, None),
    "AUTHORIZER_FAILURE": (500, None),
    "BAD_REQUEST_PARAMETERS": (400, "Missing required request parameters"),
    "BAD_REQUEST_BODY": (400, "Invalid request body"),
    "EXPIRED_TOKEN": (403, "The security token included in the request is expired"),
    "INTEGRATION_FAILURE": (504, "Internal server error"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "INVALID_API_KEY": (403, "Forbidden"),
    "INVALID_SIGNATURE": (403, "The request signature we calculated does not match the signature you provided"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "QUOTA_EXCEEDED": (429, "Limit Exceeded"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "RESOURCE_NOT_FOUND": (404, "Resource not found"),
    "THROTTLED": (429, "Too Many Requests"),
    "UNAUTHORIZED": (401, "Unauthorized"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Unsupported Media Type"),
    "WAF_FILTERED": (403, "Forbidden"),
}
_FALLBACKS = ("DEFAULT_4XX", "DEFAULT_5XX")
# AWS's template when nothing is declared.
_AWS_TEMPLATE = '{"message":$context.error.messageString}'
_CONTEXT_VARIABLE = re.compile(r"\$(?:\{context\.([A-Za-z_][\w.]*?)\}|context\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*))")
_HEADER_PARAMETER = "gatewayresponse.header."

# Lambda refuses a synchronous invoke whose event is not smaller than this (RequestEntityTooLarge),
# and API Gateway answers REQUEST_TOO_LARGE: a body under API Gateway's own 10 MiB limit can still
# be too large for the function.
LAMBDA_INVOKE_LIMIT_BYTES = 6 * 1024 * 1024


class GatewayRefusal(Exception):
    """API Gateway answers the request itself with this gateway response type (raised by the local
    authorizer and key check; the front renders it)."""

    def __init__(self, response_type: str, message: str | None = None) -> None:
        super().__init__(response_type)
        self.response_type = response_type
        self.message = message if message is not None else RESPONSE_TYPES.get(response_type, (0, None))[1]


@dataclass(frozen=True)
class GatewayRequest:
    """What a gateway response may read from the request it answers."""

    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    path_parameters: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""
    stage: str = ""


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def missing_token_message(headers: Mapping[str, str]) -> str:
    """AWS's message for an undeclared route. With an Authorization header API Gateway reads it as a
    broken SigV4 signature and names the header (today a SHA-256 of it; it used to be the value
    itself), which is why the template declares MISSING_AUTHENTICATION_TOKEN with a fixed message."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    if not value:
        return "Missing Authentication Token"
    digest = base64.b64encode(hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()).decode("ascii")
    return (
        "Invalid key=value pair (missing equal-sign) in Authorization header "
        f"(hashed with SHA-256 and encoded with Base64): '{digest}'."
    )


class GatewayResponses:
    """The gateway responses an API declares, rendered as API Gateway renders them."""

    def __init__(self, declared: Mapping[str, Any] | None = None) -> None:
        self.declared: dict[str, dict[str, Any]] = {str(k): dict(v or {}) for k, v in (declared or {}).items()}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> GatewayResponses:
        """From a RestApi's OpenAPI Body (the translated template's `AWS::ApiGateway::RestApi`)."""
        return cls(body.get("x-amazon-apigateway-gateway-responses") or {})

    def render(
        self, response_type: str, message: str | None = None, request: GatewayRequest | None = None
    ) -> GatewayAnswer:
        request = request or GatewayRequest()
        default_status, default_message = RESPONSE_TYPES.get(response_type, (500, None))
        if message is None:
            message = default_message
        spec = self.declared.get(response_type)
        if spec is None:
            # Undeclared: DEFAULT_4XX/5XX stands in, its status (if set) replacing the type's own.
            spec = self.declared.get(_FALLBACKS[0] if default_status < 500 else _FALLBACKS[1]) or {}
        status = int(spec.get("statusCode") or default_status)
        content_type, template = _pick_template(spec.get("responseTemplates") or {})
        variables = {
            "error.message": "" if message is None else message,
            # "The quoted value of $context.error.message"; a missing message is JSON null.
            "error.messageString": "null" if message is None else f'"{message}"',
            "error.responseType": response_type,
            "requestId": request.request_id,
            "extendedRequestId": request.request_id,
            "stage": request.stage,
        }
        body = _CONTEXT_VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), template)
        headers = [("Content-Type", content_type)]
        for name, source in (spec.get("responseParameters") or {}).items():
            if str(name).startswith(_HEADER_PARAMETER):
                value = _parameter_value(str(source), request)
                if value is not None:
                    headers.append((str(name)[len(_HEADER_PARAMETER) :], value))
        return GatewayAnswer(status=status, headers=headers, body=body.encode("utf-8"))


def _pick_template(templates: Mapping[str, str]) -> tuple[str, str]:
    # API Gateway picks by content type; application/json is what callers of this API get.
    if "application/json" in templates:
        return "application/json", templates["application/json"]
    for content_type, template in templates.items():
        return str(content_type), str(template)
    return "application/json", _AWS_TEMPLATE


def _parameter_value(source: str, request: GatewayRequest) -> str | None:
    if len(source) >= 2 and source.startswith("'") and source.endswith("'"):
        return source[1:-1]
    prefixes: dict[str, Mapping[str, str]] = {
        "method.request.header.": {k.lower(): v for k, v in request.headers.items()},
        "method.request.querystring.": request.query,
        "method.request.path.": request.path_parameters,
    }
    for prefix, values in prefixes.items():
        if source.startswith(prefix):
            name = source[len(prefix) :]
            return values.get(name.lower() if prefix.endswith("header.") else name)
    return None  # stage variables, context values: nothing this API maps


def check_invoke_size(event: Mapping[str, Any]) -> None:
    """Refuse an event Lambda would refuse as too large, as API Gateway does when it invokes the
    function (so after the authorizer and key check). The size is that of the event's JSON."""
    if len(json.dumps(event, separators=(",", ":")).encode("utf-8")) >= LAMBDA_INVOKE_LIMIT_BYTES:
        raise GatewayRefusal("REQUEST_TOO_LARGE")


def rest_api_bodies(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id → OpenAPI Body of each RestApi in a translated template."""
    return {
        logical_id: dict((res.get("Properties") or {}).get("Body") or {})
        for logical_id, res in (template.get("Resources") or {}).items()
        if res.get("Type") == "AWS::ApiGateway::RestApi"
    }


def of_template(
    template_path: Path,
    parameters: Mapping[str, str] | None = None,
    *,
    region: str = "us-east-1",
    stack_name: str = "video-bridge-local",
) -> GatewayResponses:
    """The gateway responses of the template's (only) RestApi, through SAM's own transform.
    Parameters not given take their template defaults."""
    from bridge_local.emulator import ACCOUNT_ID
    from bridge_local.sam import load_template, translate

    declared = (load_template(Path(template_path)).get("Parameters") or {}).items()
    values = {name: str(spec["Default"]) for name, spec in declared if "Default" in spec} | dict(parameters or {})
    translated = translate(Path(template_path), values, region=region, account_id=ACCOUNT_ID, stack_name=stack_name)
    bodies = list(rest_api_bodies(translated.template).values())
    if len(bodies) != 1:
        raise ValueError(f"expected one RestApi in {template_path}, found {len(bodies)}")
    return GatewayResponses.from_body(bodies[0])


def of_stack(stack: Any) -> GatewayResponses:
    """The gateway responses of a locally deployed stack (a `DeployedStack`), from the translated
    template it was deployed from; AWS's own answers if it has no RestApi."""
    bodies = list(rest_api_bodies(stack.template).values())
    return GatewayResponses.from_body(bodies[0]) if len(bodies) == 1 else GatewayResponses()
