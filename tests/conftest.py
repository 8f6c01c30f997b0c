"""Test-wide environment: no real AWS, no telemetry noise."""

import os

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "VideoBridgeTests")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("JOBS_TABLE_NAME", "jobs-unit")
os.environ.setdefault("ROUTER_ONE_API_KEY_SECRET", "router-one-key-unit")
# Every setting a function requires, so a unit test may run any module without a stack; a test
# about a missing setting removes its variable. A deployed stack's values replace these.
os.environ.setdefault("OWNER_ID_SECRET", "owner-id-unit")
os.environ.setdefault("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:unit")
os.environ.setdefault("RECONCILE_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/reconcile-unit")
os.environ.setdefault("IDEMPOTENCY_TABLE_NAME", "idempotency-unit")
os.environ.setdefault("WEBHOOK_DELIVERIES_TABLE_NAME", "deliveries-unit")
os.environ.setdefault("WEBHOOK_ENDPOINTS_TABLE_NAME", "endpoints-unit")
os.environ.setdefault("WEBHOOK_ENDPOINT_KEY_ID", "alias/endpoint-keys-unit")
os.environ.setdefault("EVENT_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:events-unit")
os.environ.setdefault("EVENT_BUS_NAME", "events-unit")
os.environ.setdefault("WEBHOOK_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks-unit")
os.environ.setdefault(
    "WEBHOOK_DEAD_LETTER_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks-dlq-unit"
)
os.environ.setdefault("WEBHOOK_SIGNING_SECRET", "signing-unit")
os.environ.setdefault("VIDEO_BUCKET_NAME", "videos-unit")


# --------------------------------------------------------------------------- IAM use, measured
# Every test runs with IAM enforced (bridge_local.iam). Each process writes the decisions it saw;
# after a whole-suite run the controller reports, per role, what was granted and never used.

import shutil
from pathlib import Path

import pytest

from bridge_local import iam

USAGE_DIR = Path(__file__).resolve().parent.parent / "build" / "iam-usage"
IAM_REPORT = USAGE_DIR.parent / "iam-report.md"


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def _whole_suite(config: pytest.Config) -> bool:
    return (
        config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not config.option.keyword
        and not config.option.markexpr
    )


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: at least three workers, one per CPU beyond that (addopts caps it at four). The
    integration tests mostly wait on 3 s polls, so a 2-core machine runs three stacks at once with
    time to spare: the whole suite took 9 min 20 s with two workers there and 7 min 6 s with three."""
    return max(3, os.cpu_count() or 1)


def pytest_configure(config: pytest.Config) -> None:
    if _is_controller(config):
        shutil.rmtree(USAGE_DIR, ignore_errors=True)
        os.environ[iam.USAGE_DIR_ENV] = str(USAGE_DIR)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get(iam.USAGE_DIR_ENV):
        iam.usage.flush(Path(os.environ[iam.USAGE_DIR_ENV]))
    config = session.config
    if not (_is_controller(config) and _whole_suite(config) and exitstatus == 0):
        return
    from bridge_local import iam_report

    code = iam_report.main(["--usage-dir", str(USAGE_DIR), "--markdown", str(IAM_REPORT), "--strict", "--quiet"])
    config.stash[_IAM_REPORT_RESULT] = code
    if code:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_IAM_REPORT_RESULT = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    code = config.stash.get(_IAM_REPORT_RESULT, None)
    if code is None:
        return
    verdict = "every unused grant has a reason" if code == 0 else "UNUSED GRANTS WITHOUT A REASON (see above)"
    terminalreporter.write_line(f"IAM: {verdict}; per-role report in {IAM_REPORT}")
