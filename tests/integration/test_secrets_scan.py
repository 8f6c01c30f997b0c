"""No secret ever leaves the bridge: the Router One API key, the webhook signing secret and the
registered endpoints' keys appear in nothing it emits, logs at DEBUG included.

One test drives a full set of flows through the local bridge (completed with a webhook that fails
once and is then redelivered, failed, transient upstream errors, an idempotent submit, cancel,
list, status, the delivery log, and a few 4xx answers), then gathers everything the bridge
produced: stdout/stderr at file-descriptor level, Python log records, every SNS and EventBridge
event, every webhook request, every API response, every item of every DynamoDB table, every message
left in every SQS queue, every Step Functions execution (input, output, history) and the kept
videos' object metadata. It fails if any rendering of either secret is found anywhere.

A second, fast test proves the scanner itself finds a planted secret in every form it looks for.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bridge import observability

from .conftest import BRIDGE_API_KEY, ROUTER_ONE_KEY, LocalBridge

pytestmark = pytest.mark.integration

HOOK_PATH = "/hooks/secret-scan"
CALLER_ROUTER_ONE_KEY = "sk-caller-own-account-5d1e9b"


# --------------------------------------------------------------------------- the scanner


@dataclass(frozen=True)
class Leak:
    source: str
    form: str
    context: str  # the surroundings, with the secret itself replaced by its form's name


def secret_forms(api_key: str, signing_secret: str) -> dict[str, str]:
    """Every rendering of the two secrets worth looking for, by a name that is safe to print."""
    bare = signing_secret.removeprefix("whsec_")
    forms = {
        "router-one-api-key": api_key,
        "router-one-api-key-base64": base64.b64encode(api_key.encode()).decode().rstrip("="),
        "signing-secret": bare,
        "signing-secret-whsec": f"whsec_{bare}",
    }
    try:
        key = base64.b64decode(bare, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if key:  # the HMAC key bytes, as hex and in both base64 alphabets
        forms["signing-key-hex"] = key.hex()
        forms["signing-key-base64"] = base64.b64encode(key).decode().rstrip("=")
        forms["signing-key-base64url"] = base64.urlsafe_b64encode(key).decode().rstrip("=")
    return forms


def scan(blobs: list[tuple[str, str]], forms: dict[str, str]) -> list[Leak]:
    """Case-insensitive search of every blob for every form (hex may come in either case)."""
    leaks: list[Leak] = []
    for source, text in blobs:
        folded = text.lower()
        for name, secret in forms.items():
            at = folded.find(secret.lower())
            if at >= 0:
                around = text[max(0, at - 80) : at + len(secret) + 80]
                context = around[: min(at, 80)] + f"<{name}>" + around[min(at, 80) + len(secret) :]
                leaks.append(Leak(source, name, context))
    return leaks


def as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def test_the_scanner_finds_a_planted_secret_in_every_form() -> None:
    forms = secret_forms("sk-planted-0000", "whsec_" + base64.b64encode(bytes(range(1, 37))).decode())
    raw_key = bytes(range(1, 37))
    planted = {
        "router-one-api-key": '{"headers": {"Authorization": "Bearer SK-PLANTED-0000"}}',
        "router-one-api-key-base64": "Basic " + base64.b64encode(b"sk-planted-0000").decode(),
        "signing-secret": "secret=" + base64.b64encode(raw_key).decode() + ";",
        "signing-secret-whsec": "whsec_" + base64.b64encode(raw_key).decode(),
        "signing-key-hex": "key " + raw_key.hex().upper(),
        "signing-key-base64url": base64.urlsafe_b64encode(raw_key).decode(),
    }
    for form, blob in planted.items():
        found = {leak.form for leak in scan([("synthetic", f"INFO something {blob} more")], forms)}
        assert form in found, f"the scanner missed {form}"
        assert all(secret not in leak.context for leak in scan([("s", blob)], forms) for secret in forms.values())
    assert scan([("clean", "sk-planted-000 whsec_ nothing to see, " + raw_key.hex()[:-2])], forms) == []


# --------------------------------------------------------------------------- capture helpers


@contextmanager
def powertools_debug_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The bridge's logger at DEBUG, writing to the current (captured) stdout; restored after.

    The handler keeps the stream it was created with, which may be pytest's global capture
    rather than fd 1; pointing it at `sys.stdout` during the test puts its JSON lines in capfd.
    """
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    logger = observability.logger
    previous_level = logger.log_level
    handlers = [h for h in logger.handlers if type(h) is logging.StreamHandler]
    previous_streams = [h.setStream(sys.stdout) for h in handlers]
    logger.setLevel("DEBUG")
    try:
        yield
    finally:
        logger.setLevel(previous_level)
        for handler, stream in zip(handlers, previous_streams, strict=True):
            if stream is not None:
                handler.setStream(stream)


@contextmanager
def non_propagating_loggers_into(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Powertools' own package logger does not propagate to the root, where caplog listens: attach
    caplog's handler to it (and to the bridge's logger) at DEBUG for the test, then undo that."""
    targets = [logging.getLogger("aws_lambda_powertools"), logging.getLogger(observability.logger.name)]
    levels = [target.level for target in targets]
    for target in targets:
        target.addHandler(caplog.handler)
        target.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for target, level in zip(targets, levels, strict=True):
            target.removeHandler(caplog.handler)
            target.setLevel(level)


class RecordingApi:
    """The fixture's API client, keeping every response (status, headers, body) for the scan."""

    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        self.responses: list[httpx.Response] = []

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.api.request(method, path, **kwargs)
        self.responses.append(response)
        return response

    def blobs(self) -> list[tuple[str, str]]:
        return [
            (f"api {r.request.method} {r.request.url.path} -> {r.status_code}", f"{dict(r.headers)!r}\n{r.text}")
            for r in self.responses
        ]


def dynamodb_items(bridge: LocalBridge) -> list[tuple[str, str]]:
    dynamodb = bridge.aws.client("dynamodb")
    blobs: list[tuple[str, str]] = []
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            blobs += [(f"dynamodb {table}", as_text(item)) for item in page["Items"]]
    return blobs


def sqs_messages(bridge: LocalBridge) -> list[tuple[str, str]]:
    """Peek every queue once (VisibilityTimeout 0: nothing is hidden or deleted)."""
    sqs = bridge.aws.client("sqs")
    blobs: list[tuple[str, str]] = []
    for url in sqs.list_queues().get("QueueUrls", []):
        count = int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"].get(
                "ApproximateNumberOfMessages", "0"
            )
        )
        if count == 0:
            continue
        response = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        blobs += [(f"sqs {url.rsplit('/', 1)[-1]}", as_text(message)) for message in response.get("Messages", [])]
    return blobs


def step_functions_records(bridge: LocalBridge) -> list[tuple[str, str]]:
    sfn = bridge.aws.client("stepfunctions")
    blobs: list[tuple[str, str]] = []
    executions = sfn.list_executions(stateMachineArn=bridge.stack.state_machine_arn, maxResults=1000)["executions"]
    for execution in executions:
        arn, name = execution["executionArn"], execution["name"]
        blobs.append((f"sfn {name} description", as_text(sfn.describe_execution(executionArn=arn))))
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)
        events = list(history["events"])
        while history.get("nextToken"):
            history = sfn.get_execution_history(executionArn=arn, maxResults=1000, nextToken=history["nextToken"])
            events += history["events"]
        blobs += [(f"sfn {name} history", as_text(event)) for event in events]
    return blobs


def s3_object_metadata(bridge: LocalBridge) -> list[tuple[str, str]]:
    s3 = bridge.aws.client("s3")
    blobs: list[tuple[str, str]] = []
    for bucket in s3.list_buckets().get("Buckets", []):
        for listed in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            head = s3.head_object(Bucket=bucket["Name"], Key=listed["Key"])
            blobs.append((f"s3 {bucket['Name']}/{listed['Key']}", as_text({"key": listed["Key"], **head})))
    return blobs


def log_records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    blobs: list[tuple[str, str]] = []
    for record in caplog.records:
        # The message as rendered, the raw args, extras and any exception text.
        fields = {k: v for k, v in vars(record).items() if k not in ("msg", "args")}
        blobs.append((f"log record {record.name}", f"{record.getMessage()}\n{record.args!r}\n{fields!r}"))
    return blobs


def test_botocore_debug_logs_do_not_show_secrets_manager_answers(
    bridge: LocalBridge, caplog: pytest.LogCaptureFixture
) -> None:
    from aws_lambda_powertools.utilities import parameters

    from bridge.upstream.credentials import router_one_api_key
    from bridge.webhooks.signing import current_signing_keys

    parameters.clear_caches()  # read both secrets afresh, as a cold start does
    caplog.set_level(logging.DEBUG)
    assert router_one_api_key() == ROUTER_ONE_KEY
    assert current_signing_keys()

    # botocore logs response bodies at DEBUG; bridge.observability keeps that logger at INFO.
    leaks = scan(log_records(caplog), secret_forms(ROUTER_ONE_KEY, bridge.signing_secret))
    assert not leaks, sorted({f"{leak.form} in {leak.source}" for leak in leaks})


# --------------------------------------------------------------------------- the flows


def submit(api: RecordingApi, bridge: LocalBridge, body: dict[str, Any], **sim: Any) -> str:
    if sim:
        bridge.simulator.queue_next(**sim)
    response = api.request("POST", "/v1/videos/generations", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def run_every_flow(bridge: LocalBridge, api: RecordingApi) -> list[str]:
    """Drive one of each flow to its end; return the task ids."""
    fox = {"model": "video-default", "prompt": "a fox in snow"}
    callback = f"{bridge.receiver.url}{HOOK_PATH}?fail=1"
    completed = submit(
        api,
        bridge,
        {**fox, "callback_url": callback, "metadata": {"order_id": "scan-1"}},
        run_s=1.0,
        queue_s=0.2,
    )
    failed = submit(api, bridge, fox, run_s=1.0, queue_s=0.2, outcome="failed", error_message="too spicy")
    transient = submit(api, bridge, fox, run_s=1.0, queue_s=0.2, poll_errors=[500, 503])
    bridge.simulator.queue_next(run_s=1.0, queue_s=0.2)
    idempotent = api.request("POST", "/v1/videos/generations", json=fox, headers={"Idempotency-Key": "scan-order-1"})
    assert idempotent.status_code == 202, idempotent.text
    replay = api.request("POST", "/v1/videos/generations", json=fox, headers={"Idempotency-Key": "scan-order-1"})
    assert replay.json() == idempotent.json()
    # Pass-through: a job on the caller's own Router One key, which must not leak either.
    bridge.simulator.configure(account_keys=[CALLER_ROUTER_ONE_KEY])
    bridge.simulator.queue_next(run_s=1.0, queue_s=0.2)
    own_key = api.request(
        "POST", "/v1/videos/generations", json=fox, headers={"X-Router-One-Key": CALLER_ROUTER_ONE_KEY}
    )
    assert own_key.status_code == 202, own_key.text
    long_running = submit(api, bridge, fox, run_s=60.0, queue_s=0.2)
    canceled = api.request("POST", f"/v1/videos/generations/{long_running}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text

    # 4xx answers: a bad body, an unknown task, a callback into a private network, wrong type, bad limit.
    bad_body = api.request("POST", "/v1/videos/generations", json={"model": 5, "prompt": "x"})
    unknown = api.request("GET", "/v1/videos/generations/v_00000000000000000000000000000000")
    private_callback = api.request("POST", "/v1/videos/generations", json={**fox, "callback_url": "https://10.0.0.1/h"})
    not_json = api.request("POST", "/v1/videos/generations", content=b"\xff", headers={"Content-Type": "text/plain"})
    bad_limit = api.request("GET", "/v1/videos/generations", params={"limit": "0"})
    assert (bad_body.status_code, unknown.status_code, bad_limit.status_code) == (400, 404, 400)
    assert (private_callback.status_code, not_json.status_code) == (400, 415)
    assert private_callback.json()["error"]["code"] == "invalid_callback_url"

    task_ids = [completed, failed, transient, str(idempotent.json()["task_id"]), str(own_key.json()["task_id"])]
    task_ids.append(endpoint_flow(bridge, api))
    task_ids.append(long_running)
    for task_id in task_ids:
        bridge.events.wait_for(task_id, timeout=60)
    # The webhook: one failure, the retry delivered; then a redelivery of the same event.
    delivery = bridge.wait_for_delivery_status(completed, "delivered")
    bridge.receiver.wait_for(HOOK_PATH, count=2)
    redelivered = api.request("POST", f"/v1/videos/generations/{completed}/webhooks/{delivery['event_id']}/redeliver")
    assert redelivered.status_code == 202, redelivered.text
    bridge.receiver.wait_for(HOOK_PATH, count=3)
    bridge.wait_until(
        lambda: next(
            (d for d in bridge.delivery_rows(completed) if d["status"] == "delivered" and d["round"] == 2), None
        ),
        what="the redelivery logged as delivered",
    )
    unknown_event = f"/v1/videos/generations/{completed}/webhooks/evt_00000000000000000000000000000000/redeliver"
    assert api.request("POST", unknown_event).status_code == 404

    # Reads: status, list, the delivery log.
    for task_id in task_ids:
        assert api.request("GET", f"/v1/videos/generations/{task_id}").status_code == 200
        bridge.wait_for_executions_to_end(task_id, timeout=60)
    listing = api.request("GET", "/v1/videos/generations", params={"limit": "10"})
    assert listing.status_code == 200 and listing.json()["data"]
    cursor = listing.json()["next_cursor"]
    if cursor:
        assert api.request("GET", "/v1/videos/generations", params={"cursor": cursor}).status_code == 200
    assert api.request("GET", f"/v1/videos/generations/{completed}/webhooks").status_code == 200
    return task_ids


ENDPOINT_PATH = "/hooks/secret-scan-endpoint"


def endpoint_flow(bridge: LocalBridge, api: RecordingApi) -> str:
    """A registered endpoint signing v1 and v1a, rotated, sent a job's events, read and deleted.

    Its creation and rotation go through the unrecorded client: those two answers are the only
    place its secret may appear. Returns the job's task id.
    """
    created = bridge.api.post(
        "/v1/webhook-endpoints",
        json={"url": f"{bridge.receiver.url}{ENDPOINT_PATH}?status=200", "signature_versions": ["v1", "v1a"]},
    )
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    rotated = bridge.api.post(f"/v1/webhook-endpoints/{endpoint_id}/rotate", json={"overlap_seconds": 600})
    assert rotated.status_code == 200, rotated.text
    ENDPOINT_SECRETS[:] = [created.json()["secret"], rotated.json()["secret"], *private_keys_of(bridge, endpoint_id)]
    task_id = submit(api, bridge, {"model": "video-default", "prompt": "a fox in snow"}, run_s=1.0, queue_s=0.2)
    bridge.receiver.wait_for(ENDPOINT_PATH, timeout=60)
    for path in ("", f"/{endpoint_id}", f"/{endpoint_id}/deliveries"):
        assert api.request("GET", f"/v1/webhook-endpoints{path}").status_code == 200
    assert api.request("DELETE", f"/v1/webhook-endpoints/{endpoint_id}").status_code == 200
    return task_id


ENDPOINT_SECRETS: list[str] = []


def private_keys_of(bridge: LocalBridge, endpoint_id: str) -> list[str]:
    """The endpoint's Ed25519 private keys (whsk_…), opened from its row as the sender would."""
    from bridge.store import endpoints
    from bridge.webhooks import endpoint_keys

    endpoint = endpoints.get_endpoint(bridge.owner_id, endpoint_id)
    assert endpoint is not None
    keys = endpoint_keys.unseal(endpoint)
    return [key_set.v1a for key_set in (keys.current, keys.previous) if key_set is not None]


def endpoint_secret_forms() -> dict[str, str]:
    """Each endpoint secret (whsec_) and private key (whsk_) in every form `secret_forms` knows."""
    assert len(ENDPOINT_SECRETS) == 4, "the endpoint flow ran"
    forms: dict[str, str] = {}
    for n, secret in enumerate(ENDPOINT_SECRETS):
        bare = secret.removeprefix("whsk_").removeprefix("whsec_")
        for name, value in secret_forms(f"unused-{n}", f"whsec_{bare}").items():
            if not name.startswith("router-one"):
                forms[f"endpoint-{n}-{name}"] = value
    return forms


def test_no_secret_appears_in_anything_the_bridge_emits(
    bridge: LocalBridge,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = RecordingApi(bridge.api)
    caplog.set_level(logging.DEBUG)
    with powertools_debug_logging(monkeypatch), non_propagating_loggers_into(caplog):
        observability.logger.debug("secret-scan: debug logging is captured")
        task_ids = run_every_flow(bridge, api)
        out, err = capfd.readouterr()

    # The capture itself works: the marker (DEBUG) and the bridge's own JSON lines are in it.
    assert "secret-scan: debug logging is captured" in out
    assert any(line.startswith("{") and '"level":"DEBUG"' in line for line in out.splitlines())

    assert any(r.name.startswith("aws_lambda_powertools") for r in caplog.records), "Powertools' own logs"
    blobs: list[tuple[str, str]] = [("stdout", out), ("stderr", err)]
    blobs += log_records(caplog)
    blobs += [
        (f"event {task}/{channel}", as_text(events))
        for task, by_channel in bridge.events.by_task.items()
        for channel, events in by_channel.items()
    ]
    blobs += [
        (
            f"webhook {request.path} #{n}",
            as_text({"headers": request.headers, "body": request.body, "query": request.query}),
        )
        for n, request in enumerate(bridge.receiver.received)
    ]
    blobs += api.blobs()
    blobs += dynamodb_items(bridge)
    blobs += sqs_messages(bridge)
    blobs += step_functions_records(bridge)
    blobs += s3_object_metadata(bridge)

    # What was gathered covers the flows (an empty corpus would pass vacuously).
    sources = {source.split(" ", 1)[0] for source, _ in blobs}
    assert {"stdout", "event", "webhook", "api", "dynamodb", "sfn", "log"} <= sources, sources
    corpus = "\n".join(text for _, text in blobs)
    assert all(task_id in corpus for task_id in task_ids)

    # The bridge's own API key (what its callers present) and the owner-id HMAC key are held to the same rule.
    forms = (
        secret_forms(ROUTER_ONE_KEY, bridge.signing_secret)
        | {
            "bridge-api-key": BRIDGE_API_KEY,
            "owner-id-secret": bridge.aws.client("secretsmanager").get_secret_value(
                SecretId=bridge.stack.resources["OwnerIdSecret"]
            )["SecretString"],
            "caller-router-one-key": CALLER_ROUTER_ONE_KEY,
            "caller-router-one-key-base64": base64.b64encode(CALLER_ROUTER_ONE_KEY.encode()).decode().rstrip("="),
        }
        | endpoint_secret_forms()
    )
    leaks = scan(blobs, forms)
    assert not leaks, "secrets found:\n" + "\n".join(
        f"- {leak.form} in {leak.source}: …{leak.context}…" for leak in leaks[:20]
    )
