"""Keeping finished videos (KeepVideos=true in the test stack, as in the local run)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from bridge_local.simulator import FAKE_MP4

from .conftest import LocalBridge, bridge_settings

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
    from bridge.video_store import keep_video

    event = completed_event(bridge)
    event["data"]["url"] = html_server
    event["data"].pop("video")
    step = keep_video({"task_id": event["data"]["task_id"], "event": event, "webhook": None})
    assert step["event"]["data"]["video"] == {"status": "failed", "error": "download is text/html, not a video"}
    job = bridge.api.get(f"/v1/videos/generations/{event['data']['task_id']}").json()
    assert job["video"]["status"] == "failed"
