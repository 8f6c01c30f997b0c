"""The simulator's HTTP side: Router One's routes and the control API as a werkzeug app, how each
answer goes out (whole, dripped a byte at a time, stalled part way, or reset), and
`RouterOneSimulator`, which serves it on a real port."""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.wrappers import Request

from bridge_local.http_server import (
    BackgroundServer,
    DropConnection,
    Environ,
    Service,
    StartResponse,
    connection_of,
    hold_open,
    reset_connection,
    respond,
    send_slowly,
    status_head,
)
from bridge_local.simulator.engine import Engine, parse_json_object
from bridge_local.simulator.jobs import PollAnswer
from bridge_local.simulator.options import (
    CONFIG_KEYS,
    DEFAULT_API_KEY,
    DEFAULT_ERROR_CODE,
    DEFAULT_ERROR_MESSAGE,
    FAULT_KEYS,
    FILES_PREFIX,
    HOLD_LIMIT_S,
    MAX_BODY_BYTES,
    NEXT_KEYS,
    NOT_JSON,
    NOT_JSON_BODY,
    RESET,
    STATUS_PREFIX,
    SUBMIT_PATH,
    TRUNCATED,
    ApiError,
    JobConfig,
    ServerConfig,
)
from bridge_local.simulator.scripting import apply_job_options, check_fields

_logger = logging.getLogger(__name__)

# Only echo a Host header back into result URLs when it looks like host[:port].
_HOST_HEADER_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # no answer at all: the connection is reset
    drip_s: float = 0.0  # one byte at a time, this far apart
    stall_at: int | None = None  # send this much of the body, then hold the connection open


def _poll_reply(answer: PollAnswer) -> _Reply:
    return replace(_poll_reply_whole(answer), drip_s=answer.drip_s)


def _poll_reply_whole(answer: PollAnswer) -> _Reply:
    if answer.error is not None:
        return _error_reply(answer.error)
    if answer.fault == RESET or answer.view is None:
        return _Reply(0, b"", reset=True)
    if answer.fault == NOT_JSON:
        return _Reply(200, NOT_JSON_BODY, content_type="text/html")
    body = json.dumps(answer.view).encode("utf-8")
    if answer.fault == TRUNCATED:
        body = body[: len(body) // 2]
    return _Reply(200, body)


def _json_reply(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(payload).encode("utf-8"), headers=headers or {})


def _error_reply(error: ApiError) -> _Reply:
    return _json_reply(error.status, error.envelope(), error.headers)


class _RestConverter(BaseConverter):
    """The rest of the path, slashes and control characters included (ids are checked, not routed)."""

    regex = r"[\s\S]+?"
    part_isolating = False


_ROUTES = Map(
    [
        Rule(SUBMIT_PATH, endpoint="submit", methods=["POST"]),
        Rule(f"{STATUS_PREFIX}<rest:task_id>", endpoint="poll", methods=["GET"]),
        Rule(f"{FILES_PREFIX}<rest:task_id>.mp4", endpoint="video", methods=["GET", "HEAD"]),
        Rule("/_sim/health", endpoint="health", methods=["GET"]),
        Rule("/_sim/next", endpoint="next", methods=["POST"]),
        Rule("/_sim/config", endpoint="config", methods=["GET", "POST"]),
        Rule("/_sim/reset", endpoint="reset", methods=["POST"]),
        Rule("/_sim/tasks/<rest:task_id>", endpoint="task", methods=["GET"]),
    ],
    converters={"rest": _RestConverter},
    strict_slashes=False,
    merge_slashes=False,
)
# Methods an HTTP server of Router One's knows; others are 501 like any unimplemented method.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})


def _transport_error_body(status: int, message: str) -> bytes:
    """What a request http.server itself refuses (bad request line, unknown version) gets."""
    type_ = "api_error" if status >= 500 else "invalid_request_error"
    return json.dumps(ApiError(status, type_, "bad_request", message).envelope()).encode("utf-8")


def _body(request: Request) -> bytes:
    if request.headers.get("Transfer-Encoding"):
        raise ApiError(411, "invalid_request_error", "length_required", "send a Content-Length body")
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise ApiError(400, "invalid_request_error", "bad_request", "bad Content-Length") from None
    if length < 0:
        raise ApiError(400, "invalid_request_error", "bad_request", "bad Content-Length")
    if length > MAX_BODY_BYTES:
        raise ApiError(413, "invalid_request_error", "request_too_large", "request body too large")
    return request.get_data(cache=False)


def _route(engine: Engine, request: Request, default_url: str) -> _Reply:
    """Router One's routes and the control API (``/_sim/...``), answered from the engine."""
    if request.method not in _KNOWN_METHODS:
        raise ApiError(501, "api_error", "bad_request", f"Unsupported method ({request.method!r})")
    try:
        endpoint, args = _ROUTES.bind_to_environ(request.environ).match()
    except MethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.valid_methods or ()))
        message = f"{request.method} is not allowed on {request.path}"
        raise ApiError(405, "invalid_request_error", "method_not_allowed", message, {"Allow": allowed}) from None
    except HTTPException:
        raise ApiError(404, "invalid_request_error", "not_found", f"no route for {request.path}") from None
    auth = request.headers.get("Authorization")
    # Completed URLs use the Host the client dialled, so they work from inside containers.
    host = request.headers.get("Host", "")
    base_url = f"http://{host}" if _HOST_HEADER_RE.match(host) else default_url
    if endpoint == "submit":
        accepted = engine.submit(auth, _body(request))
        return replace(_json_reply(202, accepted), drip_s=engine.submit_drip(accepted["task_id"]))
    if endpoint == "poll":
        return _poll_reply(engine.poll(auth, args["task_id"], base_url))
    if endpoint == "video":
        video = engine.video_file(args["task_id"])
        if video is None:
            raise ApiError(404, "invalid_request_error", "file_not_found", "no such video file")
        content, stall_at = video
        return _Reply(200, content, content_type="video/mp4", stall_at=stall_at)
    if endpoint == "health":
        return _json_reply(200, {"ok": True})
    if endpoint == "next":
        return _json_reply(200, {"queued": engine.queue_next(parse_json_object(_body(request)))})
    if endpoint == "config" and request.method == "POST":
        return _json_reply(200, {"config": engine.configure(parse_json_object(_body(request)))})
    if endpoint == "config":
        return _json_reply(200, {"config": engine.config()})
    if endpoint == "reset":
        engine.reset()
        return _json_reply(200, {"reset": True})
    return _json_reply(200, engine.record(args["task_id"], base_url))


class RouterOneSimulator(Service):
    """Router One look-alike on a real port, for tests and the local runner."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = DEFAULT_API_KEY,
        queue_s: float = 1.0,
        run_s: float = 8.0,
        outcome: str = "completed",
        progress: str = "linear",
        error_code: str = DEFAULT_ERROR_CODE,
        error_message: str = DEFAULT_ERROR_MESSAGE,
        insufficient_balance: bool = False,
        faults: Mapping[str, Any] | None = None,
        verbose: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``faults``: default fault options for every job (keys as in the module docstring)."""
        settings = {
            "api_key": api_key,
            "queue_s": queue_s,
            "run_s": run_s,
            "outcome": outcome,
            "progress": progress,
            "error_code": error_code,
            "error_message": error_message,
            "insufficient_balance": insufficient_balance,
        }
        checked = self._checked(settings, CONFIG_KEYS) | self._checked(dict(faults or {}), FAULT_KEYS)
        job = apply_job_options(JobConfig(), checked)
        defaults = ServerConfig(job, checked["api_key"], checked["insufficient_balance"])
        self.host = host
        self.port = port
        self.verbose = verbose
        self._engine = Engine(defaults, clock)
        self._server: BackgroundServer | None = None
        self._log_lock = threading.Lock()
        self._stopping = threading.Event()  # ends answers still dripping or stalled

    @staticmethod
    def _checked(raw: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
        # Python callers get a ValueError rather than an HTTP-shaped error.
        try:
            return check_fields(raw, allowed)
        except ApiError as exc:
            raise ValueError(exc.message) from None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._stopping.clear()
        server = BackgroundServer(
            self._app,
            self.host,
            self.port,
            name="router-one-simulator",
            # One request per connection, as werkzeug serves; the status line says 1.0 as Router One's
            # simulator always has.
            protocol="HTTP/1.0",
            software="RouterOneSimulator/1.0",
            error_body=_transport_error_body,
            on_connection_error=lambda error: self._log(f"connection error: {error!r}"),
        )
        self._server = server.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.stop()
        self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        port = self._server.address[1]
        # A wildcard bind is not dialable; point clients at loopback instead.
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{port}"

    def queue_next(self, **job_config: Any) -> None:
        """Same as ``POST /_sim/next``: script the next accepted submit (FIFO)."""
        self._engine.queue_next(self._checked(job_config, NEXT_KEYS))

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Same as ``POST /_sim/config``: change server defaults; returns them (without the key)."""
        return self._engine.configure(self._checked(changes, CONFIG_KEYS))

    def reset(self) -> None:
        """Same as ``POST /_sim/reset``."""
        self._engine.reset()

    def task_count(self) -> int:
        """How many tasks were accepted since start or the last reset."""
        return self._engine.task_count()

    def task(self, task_id: str) -> dict[str, Any]:
        """Same as ``GET /_sim/tasks/{id}``; raises KeyError for an unknown id."""
        base_url = self.url if self._server is not None else ""
        try:
            return self._engine.record(task_id, base_url)
        except ApiError:
            raise KeyError(task_id) from None

    def _app(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        request = Request(environ)
        try:
            reply = _route(self._engine, request, self.url)
        except ApiError as exc:
            reply = _error_reply(exc)
        except Exception:
            # A simulator bug: the client gets a 500 envelope, the operator gets the traceback.
            _logger.exception("unhandled error in %s %s", request.method, request.path)
            reply = _error_reply(ApiError(500, "api_error", "internal_error", "simulator error"))
        # Log before sending so the line exists by the time the client sees the answer.
        self._log(f"{request.method} {request.path} -> {'reset' if reply.reset else reply.status}")
        head_only = request.method == "HEAD"
        headers = [("Content-Type", reply.content_type), *reply.headers.items()]
        if reply.reset:
            reset_connection(connection_of(environ))
            raise DropConnection
        if reply.drip_s or reply.stall_at is not None:
            self._send_slowly(connection_of(environ), reply, headers, head_only=head_only)
            raise DropConnection
        return respond(start_response, reply.status, headers, reply.body, head_only=head_only)

    def _send_slowly(
        self, connection: socket.socket, reply: _Reply, headers: list[tuple[str, str]], *, head_only: bool
    ) -> None:
        """drip_s: every byte of the answer on its own; stall_at: the body up to there, then nothing.

        Either ends when the client leaves, the simulator stops, or after HOLD_LIMIT_S.
        """
        timing = {"stopping": self._stopping, "ends": time.monotonic() + HOLD_LIMIT_S}
        head = status_head("HTTP/1.0", reply.status, [*headers, ("Content-Length", str(len(reply.body)))])
        data = head + (b"" if head_only else reply.body[: reply.stall_at])
        pieces = [data[index : index + 1] for index in range(len(data))] if reply.drip_s else [data]
        if send_slowly(connection, pieces, pause_s=reply.drip_s, **timing) and reply.stall_at is not None:
            hold_open(connection, **timing)

    def _log(self, line: str) -> None:
        if self.verbose:
            with self._log_lock:
                print(f"[router-one-sim] {line}", file=sys.stderr, flush=True)
