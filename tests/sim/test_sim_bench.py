"""The benchmark's report: the README section, the verdicts, the tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetscale.sim.bench import END_MARKER, START_MARKER, MarkersMissingError, splice_readme
from fleetscale.sim.report import PolicySummary, markdown_table, percentile, text_table


def test_splice_replaces_only_the_section_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Title\nintro\n{START_MARKER}\nold results\n{END_MARKER}\nfooter\n", encoding="utf-8"
    )
    splice_readme(readme, "new results\n")
    assert readme.read_text(encoding="utf-8") == (
        f"# Title\nintro\n{START_MARKER}\nnew results\n{END_MARKER}\nfooter\n"
    )
    splice_readme(readme, "newer\n")
    assert readme.read_text(encoding="utf-8").count("newer") == 1


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("# no markers\n", id="none"),
        pytest.param(f"{START_MARKER}\n", id="start only"),
        pytest.param(f"{END_MARKER}\n{START_MARKER}\n", id="reversed"),
    ],
)
def test_splice_fails_clearly_without_both_markers(tmp_path: Path, text: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(text, encoding="utf-8")
    with pytest.raises(MarkersMissingError, match="bench:start"):
        splice_readme(readme, "results\n")
    assert readme.read_text(encoding="utf-8") == text


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        pytest.param([], 0.5, 0.0, id="empty"),
        pytest.param([3.0, 1.0, 2.0], 0.5, 2.0, id="median"),
        pytest.param([float(i) for i in range(1, 101)], 0.99, 99.0, id="p99"),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float) -> None:
    assert percentile(values, fraction) == expected


def _summary(policy: str, slo: float) -> PolicySummary:
    return PolicySummary(policy, 100, slo, 0.01, 0.0, 0.0, 1.5, 10.0, 1.1, 3, 2, 0.0, 0.1)


def test_tables_carry_every_policy_and_metric() -> None:
    rows = [_summary("fleetscale", 0.995), _summary("oracle", 1.0)]
    table = markdown_table(rows)
    assert table.splitlines()[0].startswith("| policy | SLO %")
    assert "| fleetscale | 99.50 | 1.00 |" in table
    assert len(text_table(rows).splitlines()) == 3
