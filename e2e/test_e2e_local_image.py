"""The operator image built here (e2e/image-local.sh) is what the chart expects to run.

No cluster needed: each check runs the image with podman, hardened as the chart's pod is
(e2e/image-local.sh run: read-only root, /tmp a tmpfs, the image's user, no capabilities, no
privilege escalation), and compares what a process inside sees (e2e/image_probe.py) with the
rendered chart. `make image-local` builds the image and runs this file alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e_support import E2E_DIR, REPO_ROOT, LocalImage
from image_probe import certificates, pem_digests

PROBE = E2E_DIR / "image_probe.py"
# Debian bookworm's root (about 175 MB uncompressed) and the virtual environment (about
# 175 MB, most of it the kubernetes client's models and their bytecode) measured 348 MB; the
# development tools (pytest, mypy, moto, ...) would add well over 50 MB.
SIZE_BUDGET_BYTES = 400 * 1000 * 1000
# Kernel and runtime file systems, which are no part of the image: the probe does not try them.
RUNTIME_FILE_SYSTEMS = ("/proc", "/sys", "/dev")


@pytest.fixture(scope="module")
def image() -> LocalImage:
    return LocalImage.from_env()


def helm_binary() -> str:
    helm = os.environ.get("FLEETSCALE_E2E_HELM") or os.environ.get("FLEETSCALE_HELM")
    if helm:
        return helm
    out = subprocess.run(
        [str(E2E_DIR / "build-binaries.sh"), "--print"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    (bin_dir,) = re.findall(r"^HELM_BIN_DIR=(.+)$", out, flags=re.MULTILINE)
    return f"{bin_dir}/helm"


@pytest.fixture(scope="module")
def chart_pod() -> dict[str, Any]:
    """The pod template of the chart's Deployment, rendered with its default values."""
    versions = (E2E_DIR / "versions.env").read_text()
    (kube_version,) = re.findall(r"^KUBE_VERSION=(\S+)$", versions, flags=re.MULTILINE)
    chart = str(REPO_ROOT / "charts" / "fleetscale")
    rendered = subprocess.run(
        [helm_binary(), "template", "fleetscale", chart, "--kube-version", kube_version],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    (deployment,) = [
        d for d in yaml.safe_load_all(rendered.stdout) if d and d.get("kind") == "Deployment"
    ]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def operator_container(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["containers"]
    found: dict[str, Any] = container
    return found


def probe(image: LocalImage, *options: str) -> dict[str, Any]:
    run = image.run(
        "--interactive", "--entrypoint=python", *options, args=["-"], stdin=PROBE.read_text()
    )
    assert run.returncode == 0, (
        f"the probe failed in the container ({run.returncode}):\n{run.stderr}"
    )
    report: dict[str, Any] = json.loads(run.stdout)
    return report


@pytest.fixture(scope="module")
def hardened(image: LocalImage) -> dict[str, Any]:
    """What a process of the image sees when run as the chart runs it."""
    return probe(image)


@pytest.fixture(scope="module")
def writable_root(image: LocalImage) -> dict[str, Any]:
    """The same, but with a writable root file system: the image's own permissions."""
    return probe(image, "--read-only=false")


def test_runs_as_the_charts_non_root_user(
    image: LocalImage, chart_pod: dict[str, Any], hardened: dict[str, Any]
) -> None:
    uid = chart_pod["securityContext"]["runAsUser"]
    gid = chart_pod["securityContext"]["runAsGroup"]
    assert uid > 0
    assert gid > 0
    assert image.inspect()["Config"]["User"] == f"{uid}:{gid}"
    assert (hardened["uid"], hardened["gid"], hardened["groups"]) == (uid, gid, [gid])


def test_entrypoint_runs_the_operator_and_reports_the_projects_version(
    image: LocalImage,
) -> None:
    assert image.inspect()["Config"]["Entrypoint"] == ["python", "-m", "fleetscale", "run"]
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    run = image.run("--entrypoint=fleetscale", args=["--version"])
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"fleetscale {version}"


def test_root_is_read_only_but_for_the_charts_writable_mounts(
    chart_pod: dict[str, Any], hardened: dict[str, Any]
) -> None:
    container = operator_container(chart_pod)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    writable = {
        m["mountPath"]: m["name"] for m in container["volumeMounts"] if not m.get("readOnly")
    }
    volumes = {v["name"]: v for v in chart_pod["volumes"]}
    assert set(writable) == {"/tmp"}, f"the chart declares other writable paths: {writable}"

    assert "ro" in hardened["mounts"]["/"]["options"], hardened["mounts"]["/"]
    # Every directory and file of the container was tried; only the declared paths took a write.
    assert hardened["dirs_tried"] > 1000
    assert hardened["files_tried"] > 10000
    dirs = [d["path"] for d in hardened["writable_dirs"]]
    outside = [d for d in dirs if not any(d == w or d.startswith(w + "/") for w in writable)]
    assert outside == [], f"writable outside the chart's writable mounts: {outside}"
    assert set(writable) <= set(dirs), "a declared writable path refused a write"
    assert [f for f in hardened["writable_files"] if not f.startswith("/tmp/")] == []
    assert hardened["refusals"].get("EROFS", 0) > 1000
    # /tmp is the chart's emptyDir: a tmpfs as large as its sizeLimit.
    assert hardened["mounts"]["/tmp"]["fstype"] == "tmpfs"
    size_limit = volumes[writable["/tmp"]]["emptyDir"]["sizeLimit"]
    assert size_limit == "64Mi"
    assert hardened["tmp_bytes"] == 64 * 1024 * 1024


def test_no_capabilities_and_no_privilege_escalation(
    chart_pod: dict[str, Any], hardened: dict[str, Any]
) -> None:
    security = operator_container(chart_pod)["securityContext"]
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["allowPrivilegeEscalation"] is False
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(hardened["status"][cap], 16) == 0, (cap, hardened["status"])
    assert hardened["status"]["NoNewPrivs"] == "1"


def test_the_user_owns_nothing_in_the_image(writable_root: dict[str, Any]) -> None:
    """Even on a writable root the image's user writes only to shared temporary directories."""
    assert "rw" in writable_root["mounts"]["/"]["options"]
    assert writable_root["writable_files"] == []
    for d in writable_root["writable_dirs"]:
        assert d["mode"] & 0o1777 == 0o1777, f"{d['path']} is writable but not a sticky tmp: {d}"
        assert d["uid"] == 0, d


def test_python_layout_and_no_build_tools(hardened: dict[str, Any]) -> None:
    py = hardened["python"]
    assert py["version"][:2] == [3, 11]
    assert py["executable"] == "/opt/fleetscale/venv/bin/python"
    assert py["prefix"] == "/opt/fleetscale/venv"
    # The venv's python is the base's own interpreter: /usr (Debian) or /usr/local (slim).
    assert py["base_prefix"] in ("/usr", "/usr/local")
    assert py["executable_resolved"].startswith(py["base_prefix"] + "/bin/python3")
    assert py["fleetscale"].startswith("/opt/fleetscale/venv/lib/python3.11/site-packages/")
    assert py["on_path"] == {"uv": None, "pip": None, "pip3": None, "python": py["executable"]}
    assert not py["pip_importable"]
    assert not any(hardened["paths_exist"].values()), hardened["paths_exist"]


def test_dependencies_are_the_lock_files_without_dev_tools(hardened: dict[str, Any]) -> None:
    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    locked = {norm(p["name"]): p.get("version") for p in lock["package"]}
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    installed = {norm(name): version for name, version in hardened["python"]["distributions"]}

    assert installed.pop("fleetscale") == project["project"]["version"]
    unlocked = {n: v for n, v in installed.items() if locked.get(n) != v}
    assert unlocked == {}, f"installed at versions uv.lock does not pin: {unlocked}"
    for requirement in project["project"]["dependencies"]:
        name, _, version = requirement.partition("==")
        assert installed.get(norm(name)) == version, requirement
    dev = {norm(re.split(r"[\[=<>~ ]", r)[0]) for r in project["dependency-groups"]["dev"]}
    assert dev & set(installed) == set(), "development tools in the image"


def test_build_hosts_own_certificates_stay_out_of_the_image(hardened: dict[str, Any]) -> None:
    """The build mounts the host's CA bundle into the RUN steps only, never into a layer.

    The host's own CAs (/usr/local/share/ca-certificates, e.g. a TLS-inspecting proxy's)
    that are in the mounted bundle must not be in the image's.
    """
    in_image = set(hardened["certificates"])
    assert in_image, "the image has no CA bundle: ca-certificates is missing from the base"
    host_bundle = set(certificates())
    local = Path("/usr/local/share/ca-certificates")
    own = {d for cert in local.glob("**/*.crt") for d in pem_digests(cert.read_text())}
    mounted = own & host_bundle
    print(f"{len(mounted)} certificate(s) of the build host's own in the bundle mounted at build")
    assert mounted & in_image == set()


def test_size_within_budget(image: LocalImage) -> None:
    size = int(image.inspect()["Size"])
    print(f"{image.ref}: {size / 1e6:.0f} MB (budget {SIZE_BUDGET_BYTES / 1e6:.0f} MB)")
    assert size <= SIZE_BUDGET_BYTES
