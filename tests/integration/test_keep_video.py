"""Keeping finished videos (KeepVideos=true in the test stack, as in the local run)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from bridge_local.iam import running_as
from bridge_local.simulator import FAKE_MP4

from .conftest import ROUTER_ONE_KEY, LocalBridge, bridge_settings

pytestmark = pytest.mark.integration


def completed_event(bridge: LocalBridge, **sim: Any) -> dict[str, Any]:
    task_id = bridge.submit(run_s=1.0, queue_s=0.1, **sim).json()["task_id"]
    return bridge.events.wait_for(task_id)["sns"][0]["event"]


def test_a_completed_video_is_copied_to_the_bucket_and_the_event_says_where(bridge: LocalBridge) -> None:
    event = completed_event(bridge)
    video = event["data"]["video"]
    assert video["status"] == "stored", video
    assert video["s3_uri"] == f"s3://{video['bucket']}/{video['key']}"
    assert video["key"] == f"videos/{event['data']['task_id']}.mp4"
    assert video["content_type"] == "video/mp4" and video["size_bytes"] == len(FAKE_MP4)
    stored = bridge.aws.client("s3").get_object(Bucket=video["bucket"], Key=video["key"])
    assert stored["Body"].read() == FAKE_MP4 and stored["ContentType"] == "video/mp4"
    assert httpx.get(video["presigned_url"], timeout=10).content == FAKE_MP4
    # The same enriched event everywhere, and on the job.
    eventbridge = bridge.events.wait_for(event["data"]["task_id"])["eventbridge"][0]["event"]
    assert eventbridge == event
    job = bridge.api.get(f"/v1/videos/generations/{event['data']['task_id']}").json()
    assert job["video"]["s3_uri"] == video["s3_uri"]
    assert job["url"] == event["data"]["url"]  # Router One's own link stays in the event too


def test_a_failed_job_has_nothing_to_keep(bridge: LocalBridge) -> None:
    event = completed_event(bridge, outcome="failed")
    assert event["data"]["status"] == "failed"
    assert "video" not in event["data"]


@pytest.fixture
def tiny_video_limit() -> Iterator[None]:
    with bridge_settings(MAX_VIDEO_BYTES="10"):
        yield


def test_a_video_over_the_size_cap_is_not_kept_but_the_completion_still_goes_out(
    bridge: LocalBridge, tiny_video_limit: None
) -> None:
    event = completed_event(bridge)
    assert event["data"]["status"] == "completed" and event["data"]["url"]
    assert event["data"]["video"] == {"status": "failed", "error": "video is larger than the 10-byte limit"}


@pytest.fixture
def html_server() -> Iterator[str]:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>not a video</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/video.mp4"
    server.shutdown()


def test_something_that_is_not_a_video_is_refused(bridge: LocalBridge, html_server: str) -> None:
    from bridge.outcomes.video_copy import keep_video

    event = completed_event(bridge)
    event["data"]["url"] = html_server
    event["data"].pop("video")
    step = keep_video({"task_id": event["data"]["task_id"], "event": event, "webhook": None})
    assert step["event"]["data"]["video"] == {"status": "failed", "error": "download is text/html, not a video"}
    job = bridge.api.get(f"/v1/videos/generations/{event['data']['task_id']}").json()
    assert job["video"]["status"] == "failed"


def test_a_download_that_stalls_ends_before_the_function_and_aborts_its_upload(bridge: LocalBridge) -> None:
    """The copy gets the function's remaining time less a reserve; a stalled download fails in time,
    the multipart upload it began is aborted, and the event says why."""
    from bridge.clients import s3
    from bridge_local.emulator import LambdaContext

    keep_video_app = sys.modules[bridge.stack.handlers["KeepVideoFunction"].__module__]
    event = completed_event(bridge)
    # A video past the multipart threshold (8 MiB) whose download stops after 9 MiB, served only by
    # the simulator (its own job, with no loop of its own).
    stalled = httpx.Client(base_url=bridge.simulator.url, headers={"Authorization": f"Bearer {ROUTER_ONE_KEY}"})
    bridge.simulator.queue_next(queue_s=0, run_s=0.1, video_bytes=12 << 20, video_stall_at=9 << 20)
    stalled_task = stalled.post("/v1/videos/generations", json={"model": "m", "prompt": "p"}).json()["task_id"]
    time.sleep(0.3)
    event["data"]["url"] = stalled.get(f"/v1/videos/generations/{stalled_task}").json()["url"]
    event["data"].pop("video")
    calls: list[str] = []
    watched = [
        f"after-call.s3.{name}" for name in ("CreateMultipartUpload", "AbortMultipartUpload", "CompleteMultipartUpload")
    ]
    for name in watched:
        s3().meta.events.register(name, lambda model, **_: calls.append(model.name), unique_id=f"test-{name}")
    budget_s = 3.0
    context = LambdaContext(
        function_name="keep-video-test",
        function_version="$LATEST",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:keep-video-test",
        memory_limit_in_mb=512,
        timeout_s=keep_video_app.RESERVE_S + budget_s,
    )

    started = time.monotonic()
    try:
        # With the function's role, as Lambda runs it: the abort is the role's to make too.
        with running_as(bridge.stack.roles["KeepVideoFunctionRole"]):
            step = keep_video_app.handler(
                {"task_id": event["data"]["task_id"], "event": event, "webhook": None}, context
            )
    finally:
        for name in watched:
            s3().meta.events.unregister(name, unique_id=f"test-{name}")
    took = time.monotonic() - started

    assert took < budget_s + 2.0, took
    assert step["event"]["data"]["video"] == {
        "status": "failed",
        "error": "download timed out: it could not finish in the time the function has",
    }
    assert calls == ["CreateMultipartUpload", "AbortMultipartUpload"]
    bucket = bridge.stack.resources["VideoBucket"]
    assert bridge.aws.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    job = bridge.api.get(f"/v1/videos/generations/{event['data']['task_id']}").json()
    assert job["video"]["status"] == "failed"
    stalled.close()
