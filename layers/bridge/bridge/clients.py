"""AWS and HTTP clients, made once and lazily so cold starts pay only for what is used.

The AWS SDK itself is imported at the first client made, not when this module loads: boto3 is
most of a handler's import time (about 130 ms of the poll's 240 on the reference machine), and a
request that never reaches AWS (a refused body, the OpenAPI document, a Router One outage seen by
the poll) then never pays for it. The first AWS call pays instead: `benchmarks/cold_start.py`
prints its setup next to the import time, so the move shows in the figures rather than hiding.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import httpx

from bridge.outbound.deadlines import DeadlineTransport
from bridge.settings import JobTableSettings, UpstreamSettings, WebhookLogSettings, WebhookSendingSettings, get_settings

if TYPE_CHECKING:
    from boto3.session import Session
    from botocore.config import Config
    from mypy_boto3_dynamodb.service_resource import Table  # pragma: no cover


@lru_cache(maxsize=1)
def aws() -> Session:
    import boto3  # deferred on purpose: see the module docstring

    return boto3.session.Session()


@lru_cache(maxsize=1)
def aws_config() -> Config:
    from botocore.config import Config  # deferred with the SDK

    # A Lambda environment runs one invocation at a time, so botocore's pool of 10 connections is
    # plenty there. The local stack runs many invocations through one copy of this module, and past
    # the pool every call would open and close a connection of its own. Connections open lazily.
    return Config(max_pool_connections=64)


def secret_text(name: str, *, max_age_s: int) -> str:
    """A Secrets Manager value as text, cached for max_age_s by Powertools (which loads boto3)."""
    from aws_lambda_powertools.utilities import parameters  # deferred with the SDK

    raw = parameters.get_secret(name, max_age=max_age_s)
    return raw if isinstance(raw, str) else raw.decode()


@lru_cache(maxsize=1)
def jobs_table() -> Table:
    return aws().resource("dynamodb", config=aws_config()).Table(get_settings(JobTableSettings).jobs_table_name)


@lru_cache(maxsize=1)
def deliveries_table() -> Table:
    name = get_settings(WebhookLogSettings).webhook_deliveries_table_name
    return aws().resource("dynamodb", config=aws_config()).Table(name)


@lru_cache(maxsize=1)
def endpoints_table() -> Table:
    name = get_settings(WebhookLogSettings).webhook_endpoints_table_name
    return aws().resource("dynamodb", config=aws_config()).Table(name)


@lru_cache(maxsize=1)
def sns() -> Any:
    return aws().client("sns", config=aws_config())


@lru_cache(maxsize=1)
def eventbridge() -> Any:
    return aws().client("events", config=aws_config())


@lru_cache(maxsize=1)
def stepfunctions() -> Any:
    return aws().client("stepfunctions", config=aws_config())


@lru_cache(maxsize=1)
def sqs() -> Any:
    return aws().client("sqs", config=aws_config())


@lru_cache(maxsize=1)
def s3() -> Any:
    return aws().client("s3", config=aws_config())


@lru_cache(maxsize=1)
def kms() -> Any:
    return aws().client("kms", config=aws_config())


def deadline_client(
    *,
    timeout: float,
    follow_redirects: bool,
    verify: ssl.SSLContext | bool = True,
    limits: httpx.Limits | None = None,
) -> httpx.Client:
    """An httpx client whose requests end by the deadline in force (`bridge.outbound.deadlines`).

    `timeout` is only a ceiling for each phase; callers set the deadline for the whole exchange.
    trust_env off: a proxy from the environment would be a transport of httpx's own, without the
    deadline (and for webhooks it would resolve the host itself and undo the pinning).
    """
    return httpx.Client(
        transport=DeadlineTransport(verify=verify, limits=limits),
        timeout=timeout,
        follow_redirects=follow_redirects,
        trust_env=False,
    )


@lru_cache(maxsize=1)
def http_client() -> httpx.Client:
    # Router One; bridge.upstream.router_one sets each request's total deadline.
    return deadline_client(timeout=get_settings(UpstreamSettings).upstream_timeout_seconds, follow_redirects=False)


def webhook_client(timeout_s: float, verify: ssl.SSLContext | bool = True) -> httpx.Client:
    """The webhook client: no connection outlives its request.

    Requests go to a checked IP address, and httpcore pools connections by scheme, address and
    port, not by the TLS name: a kept-alive connection would carry a second host that shares the
    address over the first host's TLS session, its certificate never checked. Each attempt opens
    its own connection (and deliveries to one receiver are seconds to hours apart anyway).
    """
    return deadline_client(
        timeout=timeout_s,
        follow_redirects=False,
        verify=verify,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


@lru_cache(maxsize=1)
def webhook_http_client() -> httpx.Client:
    return webhook_client(get_settings(WebhookSendingSettings).webhook_timeout_seconds)


@lru_cache(maxsize=1)
def video_http_client() -> httpx.Client:
    # Downloads follow redirects (CDNs use them); bridge.outcomes.video_copy bounds the whole transfer.
    return deadline_client(timeout=30.0, follow_redirects=True)


def reset() -> None:
    """Forget every cached client (tests point them at a fresh emulator)."""
    for factory in (
        aws,
        aws_config,
        jobs_table,
        deliveries_table,
        endpoints_table,
        sns,
        eventbridge,
        stepfunctions,
        sqs,
        kms,
        s3,
        http_client,
        webhook_http_client,
        video_http_client,
    ):
        factory.cache_clear()
