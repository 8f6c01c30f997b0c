"""API Gateway's front door, locally: the Api's authorizer, API-key check and gateway responses.

On AWS these run before the integration: a REQUEST authorizer (identity header required), then
the usage plan's check of the key the authorizer returns, with errors rendered by the template's
GatewayResponses. Here the same steps wrap the api handler, using the real authorizer function
and the template's own response templates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[Any, Any], Any]

# API Gateway's status per gateway response type when the template does not set one.
_DEFAULT_STATUS = {"UNAUTHORIZED": 401, "ACCESS_DENIED": 403, "INVALID_API_KEY": 403, "AUTHORIZER_FAILURE": 500}


@dataclass(frozen=True)
class ApiAuth:
    authorizer_function: str | None  # logical id
    identity_headers: tuple[str, ...]
    api_key_required: bool
    gateway_responses: dict[str, Any] = field(default_factory=dict)


def api_auth_of(api_properties: dict[str, Any]) -> ApiAuth | None:
    """Read an AWS::Serverless::Api's Auth and GatewayResponses (None when it has no auth)."""
    auth = api_properties.get("Auth") or {}
    if not auth:
        return None
    authorizer_function = None
    identity: tuple[str, ...] = ()
    name = auth.get("DefaultAuthorizer")
    if name:
        spec = (auth.get("Authorizers") or {})[name]
        arn = spec["FunctionArn"]
        authorizer_function = arn["Fn::GetAtt"][0] if isinstance(arn, dict) else str(arn).split(".")[0]
        identity = tuple((spec.get("Identity") or {}).get("Headers") or ())
    return ApiAuth(
        authorizer_function=authorizer_function,
        identity_headers=identity,
        api_key_required=bool(auth.get("ApiKeyRequired")),
        gateway_responses=dict(api_properties.get("GatewayResponses") or {}),
    )


def gated(
    handler: Handler,
    auth: ApiAuth,
    authorizer: Handler | None,
    api_keys: Iterable[str],
    *,
    region: str,
    stage: str,
) -> Handler:
    keys = frozenset(api_keys)

    def respond(kind: str, message: str) -> dict[str, Any]:
        spec = auth.gateway_responses.get(kind) or {}
        fallback = "DEFAULT_5XX" if _DEFAULT_STATUS.get(kind, 400) >= 500 else "DEFAULT_4XX"
        templates = spec.get("ResponseTemplates") or (auth.gateway_responses.get(fallback) or {}).get(
            "ResponseTemplates"
        )
        template = (templates or {}).get("application/json") or json.dumps({"message": "$context.error.messageString"})
        body = template.replace("$context.error.messageString", json.dumps(message))
        status = int(spec.get("StatusCode") or _DEFAULT_STATUS.get(kind, 400))
        return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": body}

    def front_door(event: dict[str, Any], context: Any) -> Any:
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        if any(name.lower() not in headers for name in auth.identity_headers):
            return respond("UNAUTHORIZED", "Unauthorized")
        answer: dict[str, Any] = {}
        if authorizer is not None:
            method_arn = (
                f"arn:aws:execute-api:{region}:{event['requestContext']['accountId']}:local/{stage}/"
                f"{event['httpMethod']}{event['path']}"
            )
            request = {"type": "REQUEST", "methodArn": method_arn} | {
                k: event.get(k)
                for k in ("resource", "path", "httpMethod", "headers", "queryStringParameters", "pathParameters")
            }
            try:
                answer = authorizer(request, context)
            except Exception as exc:
                if str(exc) == "Unauthorized":
                    return respond("UNAUTHORIZED", "Unauthorized")
                return respond("AUTHORIZER_FAILURE", "Authorizer error")
            statements = (answer.get("policyDocument") or {}).get("Statement") or []
            if not any(s.get("Effect") == "Allow" for s in statements):
                return respond("ACCESS_DENIED", "User is not authorized to access this resource")
        if auth.api_key_required:
            key = answer.get("usageIdentifierKey") if authorizer is not None else headers.get("x-api-key")
            if key not in keys:
                return respond("INVALID_API_KEY", "Forbidden")
        if answer:
            event["requestContext"]["authorizer"] = {"principalId": answer.get("principalId")} | (
                answer.get("context") or {}
            )
        return handler(event, context)

    return front_door
