"""A local stand-in for Router One's async video-generation API, served over real HTTP.

It follows /work/shared/ROUTER_ONE_API.md: submit returns 202 with a task id, status polls
walk a timeline (pending -> processing -> completed/failed), and every error uses the
documented envelope. Jobs can be scripted three ways, later ones winning:

1. server defaults (constructor arguments, CLI flags, or ``POST /_sim/config``); they apply to
   jobs submitted afterwards, and ``POST /_sim/reset`` restores the ones the server started with;
2. a directive in the prompt, e.g. ``[sim duration=5 outcome=failed progress=none queue=0]``;
3. ``POST /_sim/next`` / ``queue_next(...)`` (FIFO; each queued config is used by the next
   accepted submit).

Job options (every entry point takes all of them; a bad value is a 400 ``invalid_parameter``,
or a ValueError from Python):

``queue_s`` (alias ``queue``), ``run_s`` (alias ``duration``)
    seconds spent ``pending``, then ``processing`` (defaults 1 and 8). The default ``run_s`` is
    the time for a ``REFERENCE_VIDEO_S`` (5 s) clip: a submit whose request carries ``duration``
    (seconds of video) runs ``run_s * duration / 5``, with ``duration`` capped at
    ``MAX_SCALED_VIDEO_S`` (20) so a long clip cannot stall a local run; longer videos take longer,
    as upstream. A ``run_s`` scripted for the job (directive or ``/_sim/next``) is used as is.
``outcome``
    ``completed`` or ``failed``; ``error_code`` / ``error_message`` fill a failure's ``error``.
``progress``
    ``linear``, ``stepped`` (stalls and uneven jumps) or ``none`` (no ``progress`` field).

Fault options, for testing how a client copes with a misbehaving upstream. They mix freely:

``poll_errors``
    the fault script of the job's first polls, one entry per poll, in order; each entry is
    an HTTP status 400-599 (``503``, or ``"503"``) answered with Router One's error envelope
    (5xx: ``api_error``/``upstream_error``; 429: ``rate_limit_error``/``rate_limited`` with
    ``Retry-After: 1``), ``"STATUS:retry-after=SECONDS"`` to send that ``Retry-After``
    (``"429:retry-after=none"``: a 429 without one), or one of the tokens ``reset``
    (the connection is reset: no HTTP answer at all), ``truncated`` (200 with a JSON body cut
    in half) and ``not_json`` (200 with an HTML body). In a directive: comma-separated,
    ``poll_errors=503,429:retry-after=2,reset``.
``reset``
    after the ``poll_errors`` script, this many more polls get a connection reset.
``malformed``
    after those, this many more polls answer 200 with a broken body, alternately truncated
    JSON and not JSON at all.
``slow_s``, ``slow_polls``
    the status answer waits ``slow_s`` seconds (real time, at most 300) before it is sent,
    whatever it is, on the first ``slow_polls`` polls (``null``, or ``all`` in a directive:
    on every poll). Use it to exceed a client's per-request timeout.
``drip_s``, ``drip_polls``, ``drip_submit``
    the status answer goes out one byte every ``drip_s`` seconds (at most 10), status line and
    headers included, on the first ``drip_polls`` polls (``null``, or ``all`` in a directive: on
    every poll); ``drip_submit=true`` drips the submit's own 202 answer too. A client with only a
    per-read timeout never gives up on it; a total deadline does.
``video_bytes``, ``video_stall_at``
    the finished video is ``video_bytes`` long (the MP4 header, then zeros; at most 64 MiB);
    with ``video_stall_at=N`` its download stops after N bytes and holds the connection open.
``unknown_status``, ``unknown_after``
    from ``unknown_after`` (a fraction of the run time, default 0.5) until the run ends, the
    job reports this undocumented status (e.g. ``upscaling``) instead of ``processing``,
    progress included. ``null`` (``none`` in a directive) turns it off.
``progress_backwards``
    ``true``: at 60 % of the run the progress drops back (60 -> 20 with ``linear``) and climbs
    again at the same pace, as a job restarted upstream would, so it stays below its earlier
    peak until the run ends (at 60) and the job jumps to its outcome.
``missing_url``, ``missing_url_polls``
    ``missing_url=true``: a completed job's answer has no ``url``; with ``missing_url_polls=N``
    only its first N completed answers lack it (a link that lags behind the status).

Answer faults are served in that order: the ``poll_errors`` script, then ``reset``, then
``malformed``; a slow poll is slow whatever it answers. ``GET /_sim/tasks/{id}`` shows each
poll the job got (``poll_log``: age in seconds, the fault served, the delay, and the status and
progress of the answer when one was sent) and what is left of each fault.

Run it in the foreground with ``python -m bridge_local.simulator --port 8010`` (server-wide
faults: ``--faults "malformed=1 slow_s=2 slow_polls=1"``).

The parts: ``options`` (limits, defaults, ``JobConfig``/``ServerConfig``, the error envelope),
``scripting`` (checking values, reading directives), ``jobs`` (one job's timeline and faults),
``engine`` (the job table and its rules, no HTTP), ``server`` (the werkzeug app and
``RouterOneSimulator``) and ``cli`` (the command line).
"""

from bridge_local.simulator.cli import main
from bridge_local.simulator.engine import account_of
from bridge_local.simulator.jobs import Job
from bridge_local.simulator.jobs import progress_at as _progress
from bridge_local.simulator.options import FAKE_MP4, ApiError, JobConfig
from bridge_local.simulator.scripting import parse_directive, parse_faults
from bridge_local.simulator.server import RouterOneSimulator

__all__ = [
    "FAKE_MP4",
    "ApiError",
    "Job",
    "JobConfig",
    "RouterOneSimulator",
    "_progress",
    "account_of",
    "main",
    "parse_directive",
    "parse_faults",
]
