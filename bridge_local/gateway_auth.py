"""API Gateway's front door, locally: the Api's authorizer and API-key check.

On AWS these run after the route is found and before the integration: a REQUEST authorizer
(identity header required), then the usage plan's check of the key the authorizer returns. Here the
same steps wrap the api handler, using the real authorizer function; a refusal is raised as the
gateway response type AWS would answer with, and the front (`api_front`) renders it from the
template's own gateway responses (`gateway_responses`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bridge_local.gateway_responses import GatewayRefusal, check_invoke_size

Handler = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class ApiAuth:
    authorizer_function: str | None  # logical id
    identity_headers: tuple[str, ...]
    api_key_required: bool


def api_auth_of(api_properties: dict[str, Any]) -> ApiAuth | None:
    """Read an AWS::Serverless::Api's Auth (None when it has no auth)."""
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

    def front_door(event: dict[str, Any], context: Any) -> Any:
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        if any(name.lower() not in headers for name in auth.identity_headers):
            raise GatewayRefusal("UNAUTHORIZED")
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
                    raise GatewayRefusal("UNAUTHORIZED") from exc
                # A crashed authorizer function is a configuration error to API Gateway (message null).
                raise GatewayRefusal("AUTHORIZER_CONFIGURATION_ERROR") from exc
            statements = (answer.get("policyDocument") or {}).get("Statement") or []
            if not any(s.get("Effect") == "Allow" for s in statements):
                raise GatewayRefusal("ACCESS_DENIED")
        if auth.api_key_required:
            key = answer.get("usageIdentifierKey") if authorizer is not None else headers.get("x-api-key")
            if key not in keys:
                raise GatewayRefusal("INVALID_API_KEY")
        if answer:
            event["requestContext"]["authorizer"] = {"principalId": answer.get("principalId")} | (
                answer.get("context") or {}
            )
        check_invoke_size(event)  # the integration's invoke, past the front door
        return handler(event, context)

    return front_door
