"""`./dev up` (bridge_local.run) and the simulator's CLI: what they tell a newcomer, and how fast."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_cli.main import build_parser
from bridge_local import run, simulator
from bridge_local.ports import PortInUse, check_free
from bridge_local.tail import format_event, format_event_line


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port with a listener on it, as another program would hold it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("option", ["--port", "--receiver-port", "--aws-port"])
def test_a_taken_port_stops_the_local_run_at_once_naming_it(
    taken_port: int, option: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run reads a real Router One from the environment; another test's stack may have left one there.
    for name in ("ROUTER_ONE_BASE_URL", "ROUTER_ONE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    others = {"--port": "0", "--receiver-port": "0", "--aws-port": "0"} | {option: str(taken_port)}
    started = time.monotonic()
    code = run.main([arg for pair in others.items() for arg in pair])
    assert time.monotonic() - started < 2  # before the deploy, which takes seconds
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"port {taken_port} is in use" in err[0] and f"{option} PORT" in err[0]


def test_check_free_skips_any_port_and_not_started_and_catches_a_port_given_twice() -> None:
    check_free([(0, "--port"), (-1, "--receiver-port")])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with pytest.raises(PortInUse, match="both --port and --aws-port") as caught:
        check_free([(free, "--port"), (free, "--aws-port")])
    assert caught.value.port == free


def test_the_simulator_cli_names_a_taken_port(taken_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert simulator.main(["--port", str(taken_port)]) == 1
    err = capsys.readouterr().err
    assert str(taken_port) in err and "--port PORT" in err


def test_the_banner_says_how_to_reach_the_local_aws_and_tail_it(tmp_path: Path) -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:video-bridge-local-EventTopic"
    aws = run.LocalAws(
        "http://127.0.0.1:4599", "us-east-1", topic, "video-bridge-local-video-events", tmp_path / "e.json"
    )
    banner = run._banner("http://127.0.0.1:8000", "simulator", "stack", None, {"vb-key": "own_1"}, aws)
    assert "Embedded AWS: http://127.0.0.1:4599  region us-east-1" in banner
    assert "event bus: video-bridge-local-video-events" in banner
    assert f"--env-vars {tmp_path / 'e.json'}" in banner
    tail = next(line.strip() for line in banner.splitlines() if "video-bridge tail" in line)
    assert tail == (
        "env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_ENDPOINT_URL=http://127.0.0.1:4599 AWS_ACCESS_KEY_ID=testing "
        f"AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 .venv/bin/video-bridge tail --topic-arn {topic}"
    )
    # The tail's own parser takes the printed options as they are.
    args = build_parser({}).parse_args(tail.split(".venv/bin/video-bridge ", 1)[1].split())
    assert args.topic_arn == topic


def test_the_sam_env_vars_file_has_every_function(tmp_path: Path) -> None:
    envs = {"PollFunction": {"JOBS_TABLE_NAME": "t"}, "ApiFunction": {"JOBS_TABLE_NAME": "t", "STAGE": "dev"}}
    path = run.write_sam_env_vars(envs, tmp_path / "build" / "local-env.json")
    assert json.loads(path.read_text()) == envs


OUTCOME = {
    "type": "video.generation.failed",
    "time": "2026-11-24T21:20:51Z",
    "data": {
        "task_id": "v_1",
        "status": "failed",
        "model": "video-default",
        "owner_id": "own_5d41",
        "error": {"code": "generation_failed", "message": "content policy violation"},
        "metadata": {"order_id": "A-1017", "notes": "x" * 200},
    },
}


@pytest.mark.parametrize(
    ("event", "head"),
    [
        (
            {"channel": "sns", "topic_arn": "arn:t", "attributes": {"status": "failed"}, "event": OUTCOME},
            "── SNS         ",
        ),
        ({"channel": "eventbridge", "source": "s", "detail_type": "d", "event": OUTCOME}, "── EventBridge "),
    ],
)
def test_an_event_is_one_compact_line_by_default(event: dict[str, object], head: str) -> None:
    line = format_event_line(event)
    assert "\n" not in line and line.startswith(head)
    for part in ("video.generation.failed", "v_1", "failed", "generation_failed", "owner own_5d41"):
        assert part in line
    assert "A-1017" not in line  # the body's detail is for --verbose-events
    assert "A-1017" in format_event(event) and len(format_event(event).splitlines()) > 10


def test_a_body_that_is_no_outcome_is_still_one_line() -> None:
    assert (
        format_event_line({"channel": "raw", "event": {"b": [1, 2], "a": "x"}}) == '── message     {"a":"x","b":[1,2]}'
    )
    assert format_event_line({"channel": "sns", "event": "plain text"}) == "── SNS         plain text"


def test_verbose_events_is_an_option_of_the_local_run() -> None:
    assert run._parser().parse_args(["--verbose-events"]).verbose_events
    assert not run._parser().parse_args([]).verbose_events
