"""API Gateway REST proxy integration, locally: a request's body as the gateway reads it, the
request as the Lambda proxy event, and the handler's proxy response as status, headers and body.

The body comes with Content-Length or chunked (werkzeug undoes the chunking); the handler sees the
decoded bytes as one body. Framing the gateway cannot read is a `TransportError` the front answers
itself: 400 for a bad or conflicting Content-Length or a broken chunked body, 501 for a transfer
coding other than chunked, 413 past the payload limit.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any, BinaryIO

from bridge_local.emulator import ACCOUNT_ID
from bridge_local.http_server import RAW_HEADERS, Environ

# API Gateway REST's payload limit: larger requests never reach the function.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
# Past the limit the body is still read (and dropped) up to this much, so the client, which sends
# its whole body before it reads, gets the 413 instead of a reset connection; beyond it we hang up.
MAX_DRAIN_BYTES = 64 * 1024 * 1024
_PIECE_BYTES = 65536


class TransportError(Exception):
    """The request itself is unreadable or too large: answered by the front, as API Gateway would."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def header_fields(environ: Environ) -> list[tuple[str, str]]:
    """The request's header fields as sent: names' case kept, repeats kept."""
    return list(environ[RAW_HEADERS])


def first_header(fields: list[tuple[str, str]], name: str) -> str | None:
    """The first value of a header field, its name in any case."""
    return next((value for field, value in fields if field.lower() == name.lower()), None)


def read_body(environ: Environ, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The request body by Content-Length or chunked framing, at most `limit` bytes."""
    fields = header_fields(environ)
    stream: BinaryIO = environ["wsgi.input"]
    encoding = first_header(fields, "Transfer-Encoding")
    if encoding is not None:
        if encoding.strip().lower() != "chunked":
            raise TransportError(501, f"Transfer-Encoding {encoding[:40]!r} is not supported")
        return _read_chunked(stream, limit)
    lengths = {value.strip() for name, value in fields if name.lower() == "content-length"}
    if not lengths:
        return b""
    if len(lengths) > 1 or not all(value.isascii() and value.isdigit() for value in lengths):
        raise TransportError(400, "Content-Length is not a single non-negative number")
    length = int(lengths.pop())
    if length > limit:
        if length <= MAX_DRAIN_BYTES:
            _discard(stream, length)
        raise TransportError(413, f"the request body is larger than {limit} bytes")
    body = stream.read(length)
    if len(body) < length:
        raise TransportError(400, "the request body is shorter than its Content-Length")
    return body


def _discard(stream: BinaryIO, length: int) -> None:
    done = 0
    while done < length:
        piece = stream.read(min(_PIECE_BYTES, length - done))
        if not piece:
            return
        done += len(piece)


def _read_chunked(stream: BinaryIO, limit: int) -> bytes:
    """Read werkzeug's de-chunked stream; past `limit` keep reading (and dropping) up to MAX_DRAIN_BYTES."""
    body = bytearray()
    seen = 0
    try:
        while piece := stream.read(_PIECE_BYTES):
            seen += len(piece)
            if seen > MAX_DRAIN_BYTES:
                raise TransportError(413, f"the request body is larger than {limit} bytes")
            if seen <= limit:
                body += piece
    except (OSError, ValueError):
        # A bad chunk-size line, a missing chunk end, or a body that stops inside a chunk.
        raise TransportError(400, "malformed chunked request body") from None
    if seen > limit:
        raise TransportError(413, f"the request body is larger than {limit} bytes")
    return bytes(body)


def build_event(
    environ: Environ,
    *,
    resource: str,
    path_parameters: Mapping[str, str],
    method: str,
    path: str,
    query: Mapping[str, list[str]],
    raw_body: bytes,
    request_id: str,
    stage: str,
) -> dict[str, Any]:
    """The REST API proxy event for this request (what API Gateway passes to the function)."""
    fields = header_fields(environ)
    multi_headers: dict[str, list[str]] = {}
    for name, value in fields:
        multi_headers.setdefault(name, []).append(value)
    body: str | None
    try:
        body, is_b64 = (raw_body.decode("utf-8"), False) if raw_body else (None, False)
    except UnicodeDecodeError:
        body, is_b64 = base64.b64encode(raw_body).decode("ascii"), True
    now = time.time()
    headers = {k: v[-1] for k, v in multi_headers.items()}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": dict(query) or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "resourceId": "local",
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": formatdate(now, usegmt=True),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": environ.get("REMOTE_ADDR"), "userAgent": first_header(fields, "User-Agent")},
            "resourcePath": resource,
            "httpMethod": method,
            # The path as the caller sent it: on AWS the stage (or a base path) precedes the
            # resource path; the local URL has neither.
            "path": path,
            "protocol": environ.get("SERVER_PROTOCOL"),
            "domainName": first_header(fields, "Host") or "",
        },
        "body": body,
        "isBase64Encoded": is_b64,
    }


def render_result(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A handler's proxy response as (status, headers, body)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        raise ValueError("handler result is not an API Gateway proxy response")
    headers: list[tuple[str, str]] = []
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    for name, values in multi.items():
        headers.extend((name, str(v)) for v in values)
    multi_names = {n.lower() for n in multi}
    headers.extend((n, str(v)) for n, v in single.items() if n.lower() not in multi_names)
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except binascii.Error as exc:
            raise ValueError("isBase64Encoded body is not base64") from exc
    else:
        body = str(raw).encode("utf-8")
    return int(result["statusCode"]), headers, body
