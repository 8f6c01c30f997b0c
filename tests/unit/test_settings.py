"""Settings per function: each function's model against what template.yaml gives that function.

On AWS a function sees only the Globals' variables and its own; the local run merges every
function's environment, so a variable missing from one function would pass there. These tests
start each handler with exactly its own variables instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.settings import FUNCTION_SETTINGS
from bridge_local.deployer import DEFAULT_TEMPLATE, load_template

ROOT = Path(__file__).resolve().parents[2]


def function_environments() -> dict[str, set[str]]:
    """Function folder name -> the variable names the template sets for it."""
    template = load_template(DEFAULT_TEMPLATE)
    shared = set(template["Globals"]["Function"]["Environment"]["Variables"])
    found: dict[str, set[str]] = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        own = set((properties.get("Environment") or {}).get("Variables") or {})
        found[Path(properties["CodeUri"]).name] = shared | own
    return found


ENVIRONMENTS = function_environments()


def required(function: str) -> set[str]:
    model = FUNCTION_SETTINGS[function]
    return {name.upper() for name, field in model.model_fields.items() if field.is_required()}


def test_every_function_of_the_template_has_a_settings_model() -> None:
    assert set(ENVIRONMENTS) == set(FUNCTION_SETTINGS)


@pytest.mark.parametrize("function", sorted(ENVIRONMENTS))
def test_the_template_sets_every_variable_a_function_requires(function: str) -> None:
    assert required(function) <= ENVIRONMENTS[function], required(function) - ENVIRONMENTS[function]


@pytest.mark.parametrize("function", sorted(ENVIRONMENTS))
def test_a_function_starts_cold_with_only_what_the_template_gives_it(function: str) -> None:
    loaded = _cold_start(function, {name: f"placeholder-{name.lower()}" for name in required(function)})
    assert loaded.returncode == 0, loaded.stderr[-2000:]


@pytest.mark.parametrize("function", sorted(ENVIRONMENTS))
def test_a_missing_required_variable_fails_the_cold_start_naming_it(function: str) -> None:
    needed = sorted(required(function))
    missing = needed[0]
    env = {name: "placeholder" for name in needed if name != missing}
    loaded = _cold_start(function, env)
    assert loaded.returncode != 0
    assert "SettingsError" in loaded.stderr and missing in loaded.stderr


def _cold_start(function: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = (
        "from pathlib import Path\n"
        "from bridge_local.deployer import import_handler\n"
        f"import_handler(Path({str(ROOT / 'functions' / function)!r}), 'app.handler', 'cold_start_probe')\n"
    )
    base = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'bridge'}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    return subprocess.run(
        [sys.executable, "-c", script], env=base | env, capture_output=True, text=True, timeout=120, check=False
    )
