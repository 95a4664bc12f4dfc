"""The shape the controllers keep: short steps, and one observe step for every caller.

A tick is a sequence of small functions with plain-data inputs and outputs; a function that
grows past a screen is where the next concern would be added as another branch. The observe
step is shared by the operator, ``fleetscale explain`` and the simulator, so the three cannot
drift apart on what a measurement means.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "operator" / "fleetscale"
MAX_FUNCTION_LINES = 80


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_no_controller_function_is_longer_than_a_screen() -> None:
    too_long = [
        f"{path.relative_to(PACKAGE)}::{name} ({lines} lines)"
        for path in sorted((PACKAGE / "controller").rglob("*.py"))
        for name, lines in _functions(path)
        if lines > MAX_FUNCTION_LINES
    ]
    assert too_long == []


def _imported_names(module: str, source: str) -> set[str]:
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    return {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == source
        for alias in node.names
    }


# The operator's tick and ``explain`` reach ``observe`` through ``observation_of``, which
# turns one measurement into the observation; the simulator calls ``observe`` directly.
OBSERVE = ("fleetscale.planner.observe", "observe")
OBSERVATION_OF = ("fleetscale.controller.inferencepools.measure", "observation_of")


@pytest.mark.parametrize(
    ("module", "source", "name"),
    [
        pytest.param("controller/inferencepools/tick.py", *OBSERVATION_OF, id="reconcile"),
        pytest.param("explain.py", *OBSERVATION_OF, id="explain"),
        pytest.param("sim/fleetscale_policy.py", *OBSERVE, id="simulator"),
        pytest.param("controller/inferencepools/measure.py", *OBSERVE, id="observation_of"),
    ],
)
def test_every_caller_of_the_planner_observes_through_one_function(
    module: str, source: str, name: str
) -> None:
    assert name in _imported_names(module, source)
