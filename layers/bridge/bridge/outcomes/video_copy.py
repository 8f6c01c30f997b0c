"""Keep a finished video: copy it from Router One's short-lived URL into the stack's bucket.

Runs as its own state-machine step between the recorded outcome and its publication. Whatever
goes wrong (too big, not a video, download or upload failure) is written into the event
instead of the copy, so the completion is always published.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx

from bridge import aws_errors
from bridge.clients import s3, video_http_client
from bridge.observability import logger, metrics
from bridge.outbound import deadlines
from bridge.settings import VideoSettings, get_settings
from bridge.store import jobs
from bridge.timeutil import iso, utcnow

# Router One serves MP4; a CDN may label it generically. Anything else is not what we keep.
ACCEPTED_TYPES = {"video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov", "application/octet-stream": "mp4"}
CHUNK_BYTES = 1 << 20


class VideoCopyError(Exception):
    """The video could not be kept; the message goes into the event."""


class _CappedStream(io.RawIOBase):
    """A file-like view of a download that fails once more than `limit` bytes arrive.

    The upload reads it from a thread of its own, where the caller's deadline (a context variable)
    is not set: each read sets it again, so the download ends by `deadline` whoever reads it.
    """

    def __init__(self, chunks: Iterator[bytes], limit: int, deadline: float | None) -> None:
        self._chunks = chunks
        self._limit = limit
        self._deadline = deadline
        self._buffer = b""
        self.size = 0

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes | None:
        if self._deadline is None:
            return next(self._chunks, None)
        with deadlines.until(self._deadline):
            return next(self._chunks, None)

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = self._next_chunk()
            if chunk is None:
                return 0
            self.size += len(chunk)
            if self.size > self._limit:
                raise VideoCopyError(f"video is larger than the {self._limit}-byte limit")
            self._buffer = chunk
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count


def keep_video(step: dict[str, Any]) -> dict[str, Any]:
    """The state machine's KeepVideo step: the loop state back, its event (stored on the row) now
    saying where the video is, and the `publish` action that sends it.

    The copy ends by the deadline in force (the handler sets one short of the function's end): a
    download that cannot finish by then fails, and the upload stops and aborts its multipart
    upload (s3transfer does that on any failure), so no part is left billed in the bucket.
    """
    event = step["event"]
    data = event["data"]
    try:
        data["video"] = _copy(data["task_id"], data["url"])
        metrics.add_metric(name="VideosKept", unit="Count", value=1)
    except VideoCopyError as exc:
        data["video"] = {"status": "failed", "error": str(exc)}
        metrics.add_metric(name="VideoCopyFailures", unit="Count", value=1)
        logger.warning("video not kept", extra={"task_id": data["task_id"], "reason": str(exc)})
    jobs.replace_event(data["task_id"], event, video=data["video"])
    return step | {"event": event, "action": "publish"}


def _copy(task_id: str, url: str | None) -> dict[str, Any]:
    settings = get_settings(VideoSettings)
    bucket = settings.video_bucket_name
    if not bucket or not url:
        raise VideoCopyError("no bucket configured" if not bucket else "the completion has no url")
    try:
        with video_http_client().stream("GET", url) as response:
            if response.status_code != 200:
                raise VideoCopyError(f"download answered HTTP {response.status_code}")
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            extension = ACCEPTED_TYPES.get(content_type)
            if extension is None:
                raise VideoCopyError(f"download is {content_type or 'untyped'}, not a video")
            declared = int(response.headers.get("content-length") or 0)
            if declared > settings.max_video_bytes:
                raise VideoCopyError(f"video is larger than the {settings.max_video_bytes}-byte limit")
            key = f"videos/{task_id}.{extension}"
            body = _CappedStream(response.iter_bytes(CHUNK_BYTES), settings.max_video_bytes, deadlines.current())
            # Streamed: upload_fileobj switches to a multipart upload for large files, memory stays flat.
            s3().upload_fileobj(
                io.BufferedReader(body, CHUNK_BYTES), bucket, key, ExtraArgs={"ContentType": content_type}
            )
    except httpx.TimeoutException:
        raise VideoCopyError("download timed out: it could not finish in the time the function has") from None
    except httpx.HTTPError as exc:
        raise VideoCopyError(f"download failed: {type(exc).__name__}") from None
    except (aws_errors.ClientError, aws_errors.BotoCoreError) as exc:
        raise VideoCopyError(f"upload failed: {exc}") from None
    expires_in = settings.presigned_url_seconds
    presigned = s3().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in)
    return {
        "status": "stored",
        "s3_uri": f"s3://{bucket}/{key}",
        "bucket": bucket,
        "key": key,
        "content_type": content_type,
        "size_bytes": body.size,
        "presigned_url": presigned,
        "presigned_url_expires_at": iso(utcnow() + timedelta(seconds=expires_in)),
    }
