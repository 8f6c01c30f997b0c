"""IAM on every request: a call signed with a role's keys is decided by moto's own policy evaluator
against that role's policies, for the action and resource ARN(s) AWS would check (see bridge_local.iam)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from bridge_local.iam import Decision, RoleSession, report_denial, session_for_key, usage

# AWS's answer to a refused call differs per service: the error code, and the HTTP status.
_DENIAL_SHAPES: dict[str, tuple[str, int, bool]] = {  # moto service → (code, status, JSON body)
    "dynamodb": ("AccessDeniedException", 400, True),
    "stepfunctions": ("AccessDeniedException", 400, True),
    "secretsmanager": ("AccessDeniedException", 400, True),
    "kms": ("AccessDeniedException", 400, True),
    "events": ("AccessDeniedException", 400, True),
    "awslambda": ("AccessDeniedException", 403, True),
    "sqs": ("AccessDenied", 403, True),
    "sns": ("AuthorizationError", 403, False),
}


def _denial(service: str, session: RoleSession, action: str, resource: str) -> Exception:
    from moto.core.exceptions import JsonRESTError, _RESTError

    code, status, json_body = _DENIAL_SHAPES.get(service, ("AccessDenied", 403, False))
    principal = session.role_arn.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/")
    message = (
        f"User: {principal}/{session.role_name} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )
    if json_body:
        error: Any = JsonRESTError(code, message)
    else:
        error = _RESTError(code, message)
        # AWS's query-protocol errors carry a RequestId, which callers (the Step Functions interpreter
        # among them) read; moto fills in the placeholder.
        error.description = (
            # S3 answers with a bare <Error>; the query protocols wrap it in <ErrorResponse>.
            f"<Error><Code>{code}</Code><Message>{escape(message)}</Message><RequestId>0</RequestId></Error>"
            if service == "s3"
            else f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
            "</Error><RequestId>0</RequestId></ErrorResponse>"
        )
    error.code = status
    return error


def _access_key(headers: Any, query: Mapping[str, Any]) -> str | None:
    """Who signed: the Authorization header, or a presigned URL's X-Amz-Credential."""
    authorization = headers.get("Authorization") or ""
    start = authorization.find("Credential=")
    if start >= 0:
        return authorization[start + len("Credential=") :].split("/", 1)[0]
    for name in ("X-Amz-Credential", "AWSAccessKeyId"):  # SigV4 and SigV2 presigned URLs
        credential = query.get(name)
        if isinstance(credential, list):
            credential = credential[0] if credential else None
        if credential:
            return str(credential).split("/", 1)[0]
    return None


def role_policies(session: RoleSession, account: str, partition: str) -> list[Any]:
    """The role's inline and attached policies as moto's evaluator reads them, fresh for each call
    (a grant changed after the deploy counts at once)."""
    from moto.iam.access_control import AssumedRoleAccessKey, IAMPolicy

    # The session is known by its key already; moto wants its token (a presigned URL has it in the query).
    key = AssumedRoleAccessKey(
        account, partition, session.access_key_id, {"X-Amz-Security-Token": session.session_token}
    )
    return [IAMPolicy(policy) for policy in key.collect_policies()]


def is_allowed(policies: list[Any], action: str, resource: str) -> bool:
    """moto's evaluation: an explicit Deny wins, else some Allow must match action and resource."""
    from moto.iam.access_control import PermissionResult

    allowed = False
    for policy in policies:
        result = policy.is_action_permitted(action, resource)
        if result == PermissionResult.DENIED:
            return False
        allowed = allowed or result == PermissionResult.PERMITTED
    return allowed


def verify_enforcement_hooks() -> None:
    """Raise if the moto internals the enforcement relies on moved."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam import access_control

    if not callable(getattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", None)):
        raise RuntimeError("moto changed: ActionAuthenticatorMixin._authenticate_and_authorize_action is gone")
    for name in ("AssumedRoleAccessKey", "IAMPolicy", "PermissionResult"):
        if not hasattr(access_control, name):
            raise RuntimeError(f"moto changed: moto.iam.access_control.{name} is gone")


def install_enforcement() -> None:
    """Check every request signed by a role against that role's policies (see the module docstring)."""
    from moto.core.authorization import ActionAuthenticatorMixin

    from bridge_local import iam_resources

    verify_enforcement_hooks()
    original = ActionAuthenticatorMixin._authenticate_and_authorize_action
    if getattr(original, "__bridge_original__", None) is not None:
        return

    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        key = _access_key(self.headers, getattr(self, "querystring", None) or {})
        session = session_for_key(key) if key else None
        if session is None:
            return  # the administrator: the emulator itself, the tests, the local tooling
        params = getattr(self, "params", None)
        if not isinstance(params, dict):
            try:
                self.parse_parameters(self.normalized_request)
                params = self.params
            except Exception:
                params = {}
        where = iam_resources.Where(region=self.region, account=self.current_account)
        checks = iam_resources.requested(self.service_name, self._get_action(), params or {}, resource, where)
        policies = role_policies(session, self.current_account, where.partition)
        for action, arn in checks:
            decision = Decision(session.role_name, action, arn, is_allowed(policies, action, arn))
            usage.record(decision)
            if not decision.allowed:
                report_denial(decision)
                raise _denial(self.service_name, session, action, arn)

    authorize.__bridge_original__ = original  # type: ignore[attr-defined]
    # Replacing the method also drops moto's "first N requests unchecked" count and its signature check.
    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize  # type: ignore[method-assign]
