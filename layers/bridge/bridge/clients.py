"""AWS and HTTP clients, made once and lazily so cold starts pay only for what is used."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
import httpx

from bridge.settings import SettingsError, get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table  # pragma: no cover


@lru_cache(maxsize=1)
def jobs_table() -> Table:
    return boto3.resource("dynamodb").Table(get_settings().jobs_table_name)


@lru_cache(maxsize=1)
def deliveries_table() -> Table:
    name = get_settings().webhook_deliveries_table_name
    if not name:
        raise SettingsError("WEBHOOK_DELIVERIES_TABLE_NAME is not set")
    return boto3.resource("dynamodb").Table(name)


@lru_cache(maxsize=1)
def stepfunctions() -> Any:
    return boto3.client("stepfunctions")


@lru_cache(maxsize=1)
def sqs() -> Any:
    return boto3.client("sqs")


@lru_cache(maxsize=1)
def s3() -> Any:
    return boto3.client("s3")


@lru_cache(maxsize=1)
def kms() -> Any:
    return boto3.client("kms")


@lru_cache(maxsize=1)
def http_client() -> httpx.Client:
    # One short timeout per request; Router One asks for none on the whole generation.
    timeout = httpx.Timeout(get_settings().upstream_timeout_seconds)
    return httpx.Client(timeout=timeout, follow_redirects=False)


@lru_cache(maxsize=1)
def webhook_http_client() -> httpx.Client:
    # trust_env off: a proxy from the environment would resolve the host itself and undo the pinning.
    return httpx.Client(follow_redirects=False, trust_env=False, timeout=get_settings().webhook_timeout_seconds)


@lru_cache(maxsize=1)
def video_http_client() -> httpx.Client:
    # Downloads follow redirects (CDNs use them); 30 s per read, no limit on the whole transfer.
    return httpx.Client(timeout=httpx.Timeout(30.0), follow_redirects=True)


def reset() -> None:
    """Forget every cached client (tests point them at a fresh emulator)."""
    for factory in (
        jobs_table,
        deliveries_table,
        stepfunctions,
        sqs,
        kms,
        s3,
        http_client,
        webhook_http_client,
        video_http_client,
    ):
        factory.cache_clear()
