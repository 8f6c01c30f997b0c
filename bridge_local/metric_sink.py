"""The local metric sink: what the handlers' Powertools `Metrics` emit reaches the emulated CloudWatch.

On Lambda, `@metrics.log_metrics` prints an EMF document (CloudWatch's embedded metric format) to
stdout and CloudWatch Logs turns it into metrics. Here the same print is taken instead: `install()`
gives Powertools' EMF modules a `print` of their own, which hands each EMF document to the live
`MetricSink` (and prints anything else, or everything when no sink is live, as before). The sink
puts every metric of the document into the emulated CloudWatch (`put_metric_data`) with the
document's namespace, each of its dimension sets, unit, storage resolution and timestamp, from a
thread of its own so that a handler never waits for it. `flush()` waits until everything taken
so far is in CloudWatch (the alarm evaluator calls it before each evaluation).

Two more things a Lambda instance gives Powertools and one process does not:
- its own `Metrics` state: Powertools keeps the pending metrics in class-level dicts shared by
  every thread, so `install()` serialises adding and flushing under one lock (a flush iterating
  the set while another handler adds to it would fail that handler);
- a fresh start: `fresh_metrics_state()` rereads the namespace and service from the environment
  (the deployed functions' values) and drops metrics pending from before, as a new instance would.

Lambda's own metrics (AWS/Lambda) are not emitted here.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import json
import os
import queue
import re
import sys
import threading
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bridge_local.http_server import Service

# Every Powertools module that prints EMF documents: the provider (flushes, and a set of 100
# metrics) and the single-metric helper (the cold start metric).
EMF_MODULES = (
    "aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch",
    "aws_lambda_powertools.metrics.base",
)
MAX_DATUMS_PER_CALL = 1000  # PutMetricData's limit

_live: list[MetricSink] = []
_live_lock = threading.Lock()
_metrics_lock = threading.RLock()


def emf_document(text: str) -> dict[str, Any] | None:
    """The EMF document `text` is, or None for any other line."""
    if not text.startswith("{") or '"_aws"' not in text:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("_aws"), dict):
        return None
    return document


def metric_data(document: Mapping[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, PutMetricData's MetricData) for each metric directive of an EMF document.

    As CloudWatch extracts EMF: one metric per dimension set, the values of a list each a sample,
    dimension values and metric values read from the document's top-level keys.
    """
    directives = document["_aws"]
    timestamp = datetime.fromtimestamp(int(directives["Timestamp"]) / 1000, UTC)
    found: list[tuple[str, list[dict[str, Any]]]] = []
    for directive in directives.get("CloudWatchMetrics", []):
        data: list[dict[str, Any]] = []
        for dimension_set in directive.get("Dimensions") or [[]]:
            if any(key not in document for key in dimension_set):
                continue  # CloudWatch drops a dimension set whose values are missing
            dimensions = [{"Name": key, "Value": str(document[key])} for key in dimension_set]
            for metric in directive.get("Metrics", []):
                value = document.get(metric["Name"])
                values = value if isinstance(value, list) else [value]
                if value is None or not values:
                    continue
                datum: dict[str, Any] = {
                    "MetricName": metric["Name"],
                    "Dimensions": dimensions,
                    "Timestamp": timestamp,
                    "Values": [float(v) for v in values],
                    "Unit": metric.get("Unit") or "None",
                }
                if metric.get("StorageResolution"):
                    datum["StorageResolution"] = int(metric["StorageResolution"])
                data.append(datum)
        if data:
            found.append((str(directive["Namespace"]), data))
    return found


class MetricSink(Service):
    """Puts the EMF documents it takes into CloudWatch, through `cloudwatch` (a boto3 client)."""

    def __init__(self, cloudwatch: Any) -> None:
        self.cloudwatch = cloudwatch
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.failures = 0  # documents CloudWatch refused (each printed once)

    def start(self) -> MetricSink:
        if self._thread is None:
            install()
            self._thread = threading.Thread(target=self._run, name="metric-sink", daemon=True)
            self._thread.start()
            with _live_lock:
                _live.append(self)
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        with _live_lock:
            _live.remove(self)
        self._queue.put(None)  # after what was taken: that still goes in
        self._thread.join(timeout=10)
        self._thread = None

    def take(self, document: dict[str, Any]) -> None:
        self._queue.put(document)

    def flush(self) -> None:
        """Wait until every document taken so far is in CloudWatch (or was refused)."""
        if self._thread is not None:
            self._queue.join()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while batch[-1] is not None and len(batch) < 100:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._put([document for document in batch if document is not None])
            finally:
                for _ in batch:
                    self._queue.task_done()
            if batch[-1] is None:
                return

    def _put(self, documents: list[dict[str, Any]]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for document in documents:
            try:
                for namespace, data in metric_data(document):
                    by_namespace.setdefault(namespace, []).extend(data)
            except (KeyError, TypeError, ValueError) as exc:
                self._refused(f"not an EMF document CloudWatch would read: {exc!r}")
        for namespace, data in by_namespace.items():
            for start in range(0, len(data), MAX_DATUMS_PER_CALL):
                try:
                    self.cloudwatch.put_metric_data(
                        Namespace=namespace, MetricData=data[start : start + MAX_DATUMS_PER_CALL]
                    )
                except Exception as exc:  # the sink outlives a refused call, as the log pipeline would
                    self._refused(f"{namespace}: {type(exc).__name__}: {exc}")

    def _refused(self, why: str) -> None:
        self.failures += 1
        print(f"[metrics] dropped: {why}", file=sys.stderr)


def _live_sink() -> MetricSink | None:
    with _live_lock:
        return _live[-1] if _live else None


def _emf_print(*args: Any, **kwargs: Any) -> None:
    """Powertools' EMF modules print through this: an EMF document to stdout goes to the sink."""
    sink = _live_sink()
    if sink is not None and len(args) == 1 and kwargs.get("file") in (None, sys.stdout):
        document = emf_document(str(args[0]))
        if document is not None:
            sink.take(document)
            return
    builtins.print(*args, **kwargs)


def _serialised(method: Any) -> Any:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _metrics_lock:
            return method(*args, **kwargs)

    call.__bridge_original__ = method  # type: ignore[attr-defined]
    return call


def install() -> None:
    """Take Powertools' EMF prints and serialise its shared metric set (once per process)."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    for name in EMF_MODULES:
        importlib.import_module(name).print = _emf_print  # type: ignore[attr-defined]
    for method in ("add_metric", "flush_metrics"):
        current = getattr(AmazonCloudWatchEMFProvider, method)
        if getattr(current, "__bridge_original__", None) is None:
            setattr(AmazonCloudWatchEMFProvider, method, _serialised(current))
    # Powertools warns its caller when a handler flushes no metric; through the wrapper that caller
    # would be this module, so the warning is not shown (the test suite ignores it everywhere).
    warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning, re.escape(__name__) + "$")


def fresh_metrics_state() -> None:
    """The handlers' `Metrics` as a new Lambda instance would make it: namespace and service from
    the environment now, nothing pending (the module was imported once, perhaps before the deploy)."""
    from bridge.observability import metrics

    with _metrics_lock:
        metrics.provider.namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
        metrics.provider.service = os.environ.get("POWERTOOLS_SERVICE_NAME")
        metrics.provider.clear_metrics()
