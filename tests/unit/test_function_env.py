"""A handler in the local run sees only its own variables' settings, as on AWS."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.settings import SettingsError, TrackingSettings, get_settings
from bridge_local.function_env import with_own_environment


def asks_for_tracking(event: Any, context: Any) -> str:
    return get_settings(TrackingSettings).state_machine_arn


def test_a_setting_only_another_function_is_given_fails_like_on_aws() -> None:
    get_settings.cache_clear()
    # STATE_MACHINE_ARN is in this process's environment (tests/conftest.py), as the local run's
    # union of every function's variables would have it; this function is not given it.
    handler = with_own_environment(asks_for_tracking, "PollFunction", {"JOBS_TABLE_NAME": "t"})
    with pytest.raises(SettingsError, match=r"STATE_MACHINE_ARN.*PollFunction is not given it"):
        handler({}, None)


def test_a_function_given_the_setting_reads_it() -> None:
    get_settings.cache_clear()
    handler = with_own_environment(asks_for_tracking, "ApiFunction", {"STATE_MACHINE_ARN": "arn"})
    assert handler({}, None).startswith("arn:aws:states")
    # Outside any handler (a test, a script), nothing is checked.
    assert asks_for_tracking({}, None).startswith("arn:aws:states")
