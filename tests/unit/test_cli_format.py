"""The CLI's pure text helpers: progress bar, tables, key/value blocks, event lines, error envelopes."""

from __future__ import annotations

import io
import json
import shlex
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bridge_cli import format as fmt
from bridge_cli.api import BridgeApi, CliError, error_from_response
from bridge_cli.jobs import submit_body
from bridge_cli.main import build_parser
from bridge_cli.progress import MAX_POLL_FAILURES, ProgressDisplay, wait_for_outcome
from bridge_cli.tail import filter_policy, parse_body, region_of

NOW = datetime(2026, 11, 24, 21, 20, 51, tzinfo=UTC)


@pytest.mark.parametrize(
    ("progress", "bar"),
    [
        (0, "[--------------------]"),
        (45, "[#########-----------]"),
        (99.6, "[####################]"),
        (100, "[####################]"),
        (250, "[####################]"),
        (-3, "[--------------------]"),
        (None, "[--------------------]"),
        (True, "[--------------------]"),
    ],
)
def test_progress_bar_fills_in_proportion_and_clamps(progress: object, bar: str) -> None:
    assert fmt.progress_bar(progress) == bar


def test_progress_line_reads_bar_percent_status_elapsed() -> None:
    assert fmt.progress_line("processing", 45, 12.7) == "[#########-----------]  45%  processing  12s"
    assert fmt.progress_line("pending", None, 0) == "[--------------------]    ?  pending  0s"
    # A job that reports no progress still ends full.
    assert fmt.progress_line("completed", None, 125) == "[####################] 100%  completed  2m05s"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (3599, "59m59s"), (7440, "2h04m"), (97200, "1d03h")]
)
def test_duration_is_short_and_readable(seconds: float, text: str) -> None:
    assert fmt.duration(seconds) == text


def test_table_aligns_columns_under_their_headers() -> None:
    text = fmt.table(("ID", "STATUS"), [("v_1", "completed"), ("v_long_id", "failed")])

    assert text.splitlines() == [
        "ID         STATUS",
        "v_1        completed",
        "v_long_id  failed",
    ]


def test_jobs_table_shows_id_status_model_progress_and_created_time() -> None:
    jobs = [
        {
            "task_id": "v_a",
            "status": "processing",
            "model": "m",
            "progress": 45,
            "created_at": "2026-11-24T21:20:41.984Z",
        },
        {"task_id": "v_b", "status": "pending", "model": "m", "progress": None, "created_at": None},
    ]

    header, first, second = fmt.jobs_table(jobs).splitlines()

    assert header.split("  ")[0] == "TASK ID"
    assert first.split() == ["v_a", "processing", "m", "45%", "2026-11-24", "21:20:41"]
    assert second.split() == ["v_b", "pending", "m", "-", "-"]


def test_job_block_keeps_the_api_order_and_aligns_values() -> None:
    job = {
        "metadata": {"order_id": "A-1017"},
        "task_id": "v_a",
        "status": "failed",
        "error": {"message": "content policy violation", "type": "generation_error", "code": "generation_failed"},
        "url": None,
        "url_expires_at": "2026-11-25T21:20:51.189Z",
        "webhook_events_filter": ["completed", "failed"],
        "future_field": 7,
    }

    lines = fmt.job_block(job, NOW).splitlines()

    assert lines == [
        "task_id                v_a",
        "status                 failed",
        "url                    -",
        "url_expires_at         2026-11-25 21:20:51 UTC (in 1d00h)",
        "error                  content policy violation (generation_failed)",
        'metadata               {"order_id": "A-1017"}',
        "webhook_events_filter  completed, failed",
        "future_field           7",
    ]


def test_expiry_says_when_a_link_has_expired() -> None:
    assert fmt.expiry_text("2026-11-24T21:00:00Z", NOW) == "2026-11-24 21:00:00 UTC (expired)"
    assert fmt.expiry_text("soon", NOW) == "soon"


def test_event_line_shows_the_url_or_the_error() -> None:
    completed = {
        "type": "video.generation.completed",
        "time": "2026-11-24T21:20:51.189Z",
        "data": {"task_id": "v_a", "status": "completed", "url": "https://cdn.example/v_a.mp4", "error": None},
    }
    failed = {
        "type": "video.generation.failed",
        "time": "2026-11-24T21:20:51.189Z",
        "data": {"task_id": "v_b", "status": "failed", "url": None, "error": {"message": "boom", "code": "x"}},
    }

    assert fmt.event_line(completed) == (
        "2026-11-24 21:20:51  video.generation.completed  v_a  completed  https://cdn.example/v_a.mp4"
    )
    assert fmt.event_line(failed) == "2026-11-24 21:20:51  video.generation.failed  v_b  failed  error: boom (x)"
    assert fmt.event_line({"raw": "not json"}) == "-  -  -  -"


def test_event_line_of_an_endpoints_event_names_the_endpoint_and_why() -> None:
    disabled = {
        "time": "2026-11-24T21:20:51.189Z",
        "type": "webhook.endpoint.disabled",
        "data": {"endpoint_id": "ep_1", "reason": "gone", "url": "https://hooks.example.com/x", "owner_id": "own_a"},
    }
    assert fmt.event_line(disabled) == (
        "2026-11-24 21:20:51  webhook.endpoint.disabled  ep_1  reason: gone  https://hooks.example.com/x"
    )


def test_fit_cuts_a_line_short_of_the_terminal_width() -> None:
    assert fmt.fit("abcdef", 80) == "abcdef"
    assert fmt.fit("abcdef", 4) == "abc"


def test_progress_display_off_a_terminal_prints_one_line_per_change() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, started=0.0, tty=False)

    for status, progress in [("pending", None), ("pending", None), ("processing", 10), ("processing", 10.2)]:
        display.update(status, progress)
        display.tick()
    display.finish()

    lines = stream.getvalue().splitlines()
    assert [line.split("  ")[-2] for line in lines] == ["pending", "processing"]
    assert "\r" not in stream.getvalue()


def test_progress_display_on_a_terminal_redraws_one_line() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, started=0.0, tty=True)

    display.update("processing", 90)
    display.update("completed", 100)
    display.finish()

    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1


def test_error_envelope_becomes_message_code_and_exit_code() -> None:
    refused = httpx.Response(
        409,
        json={"error": {"message": "job 'v_a' already ended", "type": "invalid_request_error", "code": "job_ended"}},
    )
    broken = httpx.Response(502, text="<html>Bad Gateway</html>")

    assert (str(error_from_response(refused)), error_from_response(refused).exit_code) == (
        "job 'v_a' already ended (job_ended)",
        2,
    )
    assert (str(error_from_response(broken)), error_from_response(broken).exit_code) == (
        "HTTP 502 from the bridge: <html>Bad Gateway</html>",
        3,
    )


def test_tail_reads_raw_and_wrapped_sns_bodies() -> None:
    envelope = {"id": "evt_1", "type": "video.generation.completed"}
    wrapped = {"Type": "Notification", "TopicArn": "arn:aws:sns:eu-west-1:1:t", "Message": json.dumps(envelope)}

    assert parse_body(json.dumps(envelope)) == envelope
    assert parse_body(json.dumps(wrapped)) == envelope
    assert parse_body("not json") == {"raw": "not json"}
    assert parse_body("[1]") == {"raw": [1]}


def test_tail_region_and_filter_policy() -> None:
    assert region_of("arn:aws:sns:eu-west-1:123456789012:video-bridge-dev-EventTopic") == "eu-west-1"
    assert region_of("not-an-arn") is None
    assert filter_policy(statuses=None, models=None) is None
    assert filter_policy(statuses=["failed", "timed_out"], models=None) == {"status": ["failed", "timed_out"]}
    assert filter_policy(statuses=None, models=None, owners=["own_1"]) == {"owner_id": ["own_1"]}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def scripted_api(answers: list[httpx.Response]) -> tuple[BridgeApi, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return BridgeApi("http://bridge.test", 5, transport=httpx.MockTransport(answer)), seen


def test_waiting_polls_at_the_chosen_pace_and_rides_out_a_bridge_failure() -> None:
    api, seen = scripted_api(
        [
            httpx.Response(200, json={"task_id": "v_a", "status": "processing", "progress": 10}),
            httpx.Response(503, json={"error": {"message": "busy", "type": "api_error", "code": "unavailable"}}),
            httpx.Response(200, json={"task_id": "v_a", "status": "completed", "progress": 100, "url": "u"}),
        ]
    )
    clock, stream = FakeClock(), io.StringIO()
    display = ProgressDisplay(stream, started=0.0, tty=False)

    job = wait_for_outcome(api, "v_a", poll_every=4, display=display, sleep=clock.sleep, clock=clock)

    assert job["url"] == "u"
    assert [request.url.path for request in seen] == ["/v1/videos/generations/v_a"] * 3
    assert clock.now == 8
    assert f"warning: busy (unavailable); trying again (1/{MAX_POLL_FAILURES})" in stream.getvalue()


def test_waiting_stops_at_once_when_the_bridge_refuses() -> None:
    api, _ = scripted_api(
        [httpx.Response(404, json={"error": {"message": "no such job", "type": "x", "code": "task_not_found"}})]
    )
    clock = FakeClock()

    with pytest.raises(CliError) as refused:
        wait_for_outcome(
            api,
            "v_a",
            poll_every=3,
            display=ProgressDisplay(io.StringIO(), 0.0, tty=False),
            sleep=clock.sleep,
            clock=clock,
        )

    assert (refused.value.exit_code, refused.value.code) == (2, "task_not_found")


def test_outcome_lines_say_where_the_video_was_kept_or_why_not() -> None:
    from datetime import UTC, datetime

    from bridge_cli.format import outcome_lines

    now = datetime(2026, 11, 24, tzinfo=UTC)
    kept = {"task_id": "v_1", "status": "completed", "video": {"status": "stored", "s3_uri": "s3://b/videos/v_1.mp4"}}
    assert "kept:     s3://b/videos/v_1.mp4" in outcome_lines(kept, now)
    failed = {"task_id": "v_1", "status": "completed", "video": {"status": "failed", "error": "too big"}}
    assert "not kept: too big" in outcome_lines(failed, now)


def test_submit_sends_every_field_of_the_request_model() -> None:
    from bridge.models import GenerationRequest

    def body(*images: str) -> dict[str, object]:
        argv = ["submit", "--model", "m", "--prompt", "p", "--duration", "5", "--size", "720p"]
        argv += ["--aspect-ratio", "16:9", "--negative-prompt", "blur", "--input-reference", "ref_1"]
        argv += ["--callback-url", "https://hooks.example.com/h", "--events", "completed"]
        argv += ["--metadata", '{"a": 1}', "--image-url", *images]
        return submit_body(build_parser({}).parse_args(argv))

    one, two = body("https://i.example.com/1"), body("https://i.example.com/1", "https://i.example.com/2")
    # A field added to the API without a submit option fails here.
    assert set(one) | set(two) == set(GenerationRequest.model_fields)
    assert one["negative_prompt"] == "blur" and one["input_reference"] == "ref_1"
    GenerationRequest.model_validate(one)
    GenerationRequest.model_validate(two)


def test_the_cli_page_runs_the_cli_the_way_it_is_installed() -> None:
    root = Path(__file__).resolve().parents[2]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"video-bridge": "bridge_cli.main:main"}
    section = (root / "docs" / "cli.md").read_text()
    block = section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    # The script is in .venv/bin, not on PATH: the block activates the venv before the bare name.
    assert block[0].startswith("source .venv/bin/activate")
    assert ".venv/bin/video-bridge" in section
    examples = [shlex.split(line.split("#", 1)[0]) for line in block[1:]]
    assert examples and all(words[0] == "video-bridge" for words in examples)
    for words in examples:
        build_parser({}).parse_args(words[1:])  # each example is a command the CLI takes


# --------------------------------------------------------------------------- endpoints

ENDPOINT = {
    "object": "webhook_endpoint",
    "id": "ep_3b9f",
    "url": "https://hooks.example.com/video",
    "description": "",
    "event_types": ["completed", "failed"],
    "signature_versions": ["v1", "v1a"],
    "enabled": True,
    "disabled_reason": None,
    "disabled_at": None,
    "failing_since": None,
    "last_success_at": "2026-11-24T21:20:51.189Z",
    "public_keys": [{"key": "whpk_new", "expires_at": None}, {"key": "whpk_old", "expires_at": "2026-11-25T21:20:51Z"}],
    "created_at": "2026-11-24T21:00:00.000Z",
    "updated_at": "2026-11-24T21:20:51.189Z",
}


def test_endpoint_block_aligns_every_field_and_lists_each_public_key() -> None:
    lines = fmt.endpoint_block(ENDPOINT | {"secret": "whsec_abc"}).splitlines()

    rows = {line[:15].strip(): line[17:] for line in lines}
    assert lines[0] == "id               ep_3b9f"
    assert rows["event_types"] == "completed, failed" and rows["signatures"] == "v1, v1a"
    assert rows["state"] == "enabled" and rows["description"] == "-" and rows["failing_since"] == "-"
    assert rows["last_success_at"] == "2026-11-24 21:20:51 UTC"
    # The previous key on a line of its own under the current one, with when it stops signing.
    keys = lines.index("public_keys      whpk_new")
    assert lines[keys + 1] == "                 whpk_old (until 2026-11-25 21:20:51 UTC)"
    assert lines[-1] == "secret           whsec_abc"
    assert "secret" not in fmt.endpoint_block(ENDPOINT)


def test_a_disabled_endpoint_says_why_and_since_when() -> None:
    disabled = ENDPOINT | {"enabled": False, "disabled_reason": "gone", "disabled_at": "2026-11-24T22:00:00Z"}
    text = fmt.endpoint_block(disabled)
    assert "state            disabled (gone)" in text.splitlines()
    assert "disabled_at      2026-11-24 22:00:00 UTC" in text.splitlines()
    assert "disabled_at" not in fmt.endpoint_block(ENDPOINT)


def test_endpoints_table_shows_id_state_events_and_url() -> None:
    disabled = ENDPOINT | {"id": "ep_2", "enabled": False, "disabled_reason": "failing", "event_types": ["failed"]}
    header, first, second = fmt.endpoints_table([ENDPOINT, disabled]).splitlines()
    assert header.split("  ")[0] == "ENDPOINT ID"
    assert first.split() == ["ep_3b9f", "enabled", "completed,failed", "https://hooks.example.com/video"]
    assert second.split() == ["ep_2", "disabled", "(failing)", "failed", "https://hooks.example.com/video"]


def test_endpoint_deliveries_are_one_line_each_in_the_apis_order() -> None:
    rows = [
        {
            "created_at": "2026-11-24T21:20:51.189Z",
            "status": "dead_lettered",
            "event_type": "video.generation.failed",
            "task_id": "v_b",
            "webhook_id": "evt_2_ep_3b9f",
            "attempt_count": 17,
        },
        {
            "created_at": "2026-11-24T21:00:00Z",
            "status": "delivered",
            "event_type": "video.generation.completed",
            "task_id": "v_a",
            "webhook_id": "evt_1_ep_3b9f",
            "attempt_count": 1,
        },
    ]
    header, newest, oldest = fmt.endpoint_deliveries_table(rows).splitlines()
    assert header.split("  ")[0] == "CREATED (UTC)"
    assert newest.split()[:4] == ["2026-11-24", "21:20:51", "dead_lettered", "video.generation.failed"]
    assert newest.split()[4:] == ["v_b", "evt_2_ep_3b9f", "17"]
    assert oldest.split()[2:] == ["delivered", "video.generation.completed", "v_a", "evt_1_ep_3b9f", "1"]


def test_recovery_text_names_the_time_and_the_pace() -> None:
    answer = {"endpoint_id": "ep_3b9f", "since": "2026-11-24T21:00:00Z", "status": "queued", "rate_per_second": 5.0}
    assert fmt.recovery_text(answer) == (
        "recovery of ep_3b9f queued: every delivery that failed since 2026-11-24 21:00:00 UTC is sent again, "
        "at most 5 a second"
    )


def test_endpoint_options_become_only_the_fields_given() -> None:
    from bridge.webhooks.endpoints import EndpointCreate, EndpointUpdate
    from bridge_cli.endpoints import endpoint_body

    parse = build_parser({}).parse_args
    events = ["--event-type", "completed", "video.generation.failed", "--event-type", "completed"]
    options = ["--signature", "v1", "v1a", "--description", "orders", "--json"]
    create = parse(["endpoints", "create", "--url", "https://h.example/x", *events, *options])
    body = endpoint_body(create)
    assert body == {
        "url": "https://h.example/x",
        "event_types": ["completed", "failed"],
        "description": "orders",
        "signature_versions": ["v1", "v1a"],
    }
    assert create.json is True and create.subcommand == "create"
    EndpointCreate.model_validate(body)  # what the API reads: a field renamed there fails here

    assert endpoint_body(parse(["endpoints", "create", "--url", "https://h.example/x"])) == {
        "url": "https://h.example/x"
    }
    assert endpoint_body(parse(["endpoints", "update", "ep_1", "--disable"])) == {"enabled": False}
    update = parse(["--json", "endpoints", "update", "ep_1", "--enable", "--url", "https://h.example/y"])
    assert endpoint_body(update) == {"url": "https://h.example/y", "enabled": True} and update.json is True
    EndpointUpdate.model_validate(endpoint_body(update))


@pytest.mark.parametrize(
    "argv",
    [
        ["endpoints"],
        ["endpoints", "create"],
        ["endpoints", "create", "--url", "https://h.example/x", "--event-type", "finished"],
        ["endpoints", "create", "--url", "https://h.example/x", "--signature", "v2"],
        ["endpoints", "update", "ep_1", "--enable", "--disable"],
        ["endpoints", "rotate", "ep_1", "--overlap-seconds", "-1"],
        ["endpoints", "recover", "ep_1"],
        ["endpoints", "recover", "ep_1", "--since", "yesterday"],
        ["endpoints", "deliveries", "ep_1", "--status", "failed"],
        ["endpoints", "deliveries", "ep_1", "--limit", "0"],
    ],
)
def test_bad_endpoints_arguments_are_argparse_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser({}).parse_args(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_endpoint_calls_go_to_their_routes_with_escaped_ids() -> None:
    ok = httpx.Response(200, json={})
    api, seen = scripted_api([ok] * 9)
    api.create_endpoint({"url": "u"})
    api.list_endpoints()
    api.get_endpoint("ep/1")
    api.update_endpoint("ep_1", {"enabled": True})
    api.delete_endpoint("ep_1")
    api.rotate_endpoint("ep_1")
    api.rotate_endpoint("ep_1", 0)
    api.recover_endpoint("ep_1", "2026-11-24T21:00:00Z")
    api.endpoint_deliveries("ep_1", status="gone", limit=5)

    calls = [(r.method, r.url.raw_path.decode(), r.content) for r in seen]
    assert calls == [
        ("POST", "/v1/webhook-endpoints", b'{"url":"u"}'),
        ("GET", "/v1/webhook-endpoints", b""),
        ("GET", "/v1/webhook-endpoints/ep%2F1", b""),
        ("PATCH", "/v1/webhook-endpoints/ep_1", b'{"enabled":true}'),
        ("DELETE", "/v1/webhook-endpoints/ep_1", b""),
        # No overlap given: no body, and the bridge's default applies.
        ("POST", "/v1/webhook-endpoints/ep_1/rotate", b""),
        ("POST", "/v1/webhook-endpoints/ep_1/rotate", b'{"overlap_seconds":0}'),
        ("POST", "/v1/webhook-endpoints/ep_1/recover", b'{"since":"2026-11-24T21:00:00Z"}'),
        ("GET", "/v1/webhook-endpoints/ep_1/deliveries?status=gone&limit=5", b""),
    ]


def test_endpoints_commands_print_text_or_the_apis_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bridge_cli import endpoints
    from bridge_cli.main import main

    page = {
        "object": "list",
        "data": [{"created_at": "2026-11-24T21:00:00Z", "status": "stopped", "webhook_id": "evt_1_ep_1"}],
        "has_more": True,
        "next_cursor": "abc",
    }
    answers = [httpx.Response(200, json=page), httpx.Response(200, json=page)]
    monkeypatch.setattr(endpoints, "open_api", lambda args: scripted_api(answers)[0])

    assert main(["endpoints", "deliveries", "ep_1", "--limit", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[1].split()[2] == "stopped" and len(out.splitlines()) == 2
    assert err.strip() == "more deliveries: add --cursor abc"

    assert main(["endpoints", "deliveries", "ep_1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == page and err == ""
