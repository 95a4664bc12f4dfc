"""docs/security.md names a test for every threat it lists, and each of those tests exists.

A row whose test is renamed or removed fails here, so the threat model cannot drift from the
suite that proves it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THREAT_MODEL = REPO / "docs" / "security.md"


def rows() -> list[tuple[str, list[tuple[str, str]]]]:
    """Each threat row (its id) and the (file, test) pairs its last column names."""
    found = []
    for line in THREAT_MODEL.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not re.fullmatch(r"[TOP]\d+", cells[0]):
            continue
        tests: list[tuple[str, str]] = []
        path = ""
        for token in re.findall(r"`([^`]+)`", cells[-1]):
            file, _, name = token.partition("::")
            path = file or path
            if name:
                tests.append((path, name.split("[", 1)[0]))
        found.append((cells[0], tests))
    return found


def test_the_threat_model_has_its_rows() -> None:
    ids = [row_id for row_id, _ in rows()]
    assert len(ids) == len(set(ids))
    assert {"T1", "T5", "T7", "T8", "T9", "T17", "O1", "O2", "P1"} <= set(ids)


@pytest.mark.parametrize(("row_id", "tests"), [pytest.param(*row, id=row[0]) for row in rows()])
def test_every_threat_names_tests_that_exist(row_id: str, tests: list[tuple[str, str]]) -> None:
    assert tests, f"{row_id} names no test"
    for path, name in tests:
        source = (REPO / path).read_text(encoding="utf-8")
        assert re.search(rf"^(async )?def {re.escape(name)}\(", source, re.MULTILINE), (
            f"{row_id}: {path}::{name} does not exist"
        )
