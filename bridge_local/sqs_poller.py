"""Lambda's SQS event source mapping, locally: poll a queue, invoke the function, delete what succeeded.

As on AWS: messages go to the function in batches of up to BatchSize as an SQS event; with
ReportBatchItemFailures only the listed messages stay on the queue, a function error keeps the
whole batch. Kept messages come back after the visibility timeout, and the queue's redrive
policy moves them to the dead-letter queue after maxReceiveCount receives (moto does that part).

Concurrency: Lambda works on several batches at once, each in its own function instance, up to
the event source's MaximumConcurrency. Here each of that many workers (at most
`MAX_LOCAL_WORKERS`) loads its own copy of the function's module, so module state such as a
Powertools BatchProcessor is never shared between two batches, as on Lambda. A source without
code to load (a handler registered by hand) gets one worker that invokes through the emulator.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
from collections.abc import Iterable
from typing import Any

import boto3

from bridge_local.deployer import Handler, SqsEventSource, import_handler
from bridge_local.emulator import LambdaContext
from bridge_local.iam import running_as

# Lambda starts with 5 concurrent batches per SQS event source when no maximum is set; the local
# stack caps workers to keep one process's thread count sane.
DEFAULT_CONCURRENCY = 5
MAX_LOCAL_WORKERS = 8
_instance_numbers = itertools.count(1)


def sqs_event(records: list[dict[str, Any]], source: SqsEventSource, region: str) -> dict[str, Any]:
    """The event Lambda hands a function for a batch of received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": source.queue_arn,
                "awsRegion": region,
            }
            for message in records
        ]
    }


class SqsPoller:
    """Background workers for one event source: one per concurrent batch, each with its own instance."""

    def __init__(self, source: SqsEventSource, region: str, wait_s: int = 1) -> None:
        self.source = source
        self.region = region
        self.wait_s = wait_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def workers(self) -> int:
        if self.source.code_dir is None:
            return 1
        return max(1, min(self.source.maximum_concurrency or DEFAULT_CONCURRENCY, MAX_LOCAL_WORKERS))

    def start(self) -> SqsPoller:
        for n in range(self.workers):
            thread = threading.Thread(target=self._run, name=f"sqs-{self.source.function_name}-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.wait_s + 10)
        self._threads.clear()

    def _instance(self) -> Handler | None:
        if self.source.code_dir is None:
            return None
        module = f"fn_{self.source.function_logical_id}_instance_{next(_instance_numbers)}"
        return import_handler(self.source.code_dir, self.source.handler, module)

    def _run(self) -> None:
        # As Lambda does, the mapping receives and deletes with the function's execution role, and
        # the function runs with it.
        with running_as(self.source.role):
            self._poll_until_stopped()

    def _poll_until_stopped(self) -> None:
        # Own session and clients: boto3 sessions are not thread-safe.
        session = boto3.session.Session()
        sqs, lam = session.client("sqs"), session.client("lambda")
        instance = self._instance()
        while not self._stop.is_set():
            try:
                self.poll_once(sqs, lam, instance)
            except Exception as exc:  # keep polling; a local hiccup must not end the event source
                print(f"[sqs {self.source.function_name}] {type(exc).__name__}: {exc}", file=sys.stderr)
                self._stop.wait(1)

    def _invoke(self, lam: Any, instance: Handler | None, event: dict[str, Any]) -> Any:
        """The function's answer; raises if it failed (the whole batch then stays)."""
        if instance is None:
            response = lam.invoke(FunctionName=self.source.function_name, Payload=json.dumps(event).encode("utf-8"))
            if response.get("FunctionError"):
                raise RuntimeError(f"{self.source.function_name} failed")
            return json.loads(response["Payload"].read() or b"null")
        context = LambdaContext(
            function_name=self.source.function_name,
            function_version="$LATEST",
            invoked_function_arn=self.source.queue_arn.replace(":sqs:", ":lambda:"),
            memory_limit_in_mb=256,
            timeout_s=self.source.timeout_s,
        )
        # Through JSON and back, as Lambda hands it over.
        return json.loads(json.dumps(instance(json.loads(json.dumps(event)), context)))

    def poll_once(self, sqs: Any, lam: Any, instance: Handler | None = None) -> int:
        messages = sqs.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=min(10, self.source.batch_size),
            WaitTimeSeconds=self.wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        try:
            result = self._invoke(lam, instance, sqs_event(messages, self.source, self.region))
        except Exception as exc:
            print(f"[sqs {self.source.function_name}] function error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 0  # the whole batch stays; it reappears after the visibility timeout
        failed: set[str] = set()
        if self.source.report_batch_item_failures:
            result = result or {}
            failed = {item.get("itemIdentifier") for item in result.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=self.source.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start:][:10])],
            )
        return len(done)


def start_pollers(sources: Iterable[SqsEventSource], region: str) -> list[SqsPoller]:
    return [SqsPoller(source, region).start() for source in sources]
