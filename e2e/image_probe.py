"""What a process in the operator's container sees of its file system, privileges and Python.

Runs inside the container: e2e/test_e2e_local_image.py feeds it to the image's own Python on
standard input (`python -`) and reads the one JSON object it prints. Standard library only.

Every directory and regular file of the container is tried for writing, except under /proc,
/sys and /dev (kernel and runtime file systems that are no part of the image): a file is
created in each directory (and removed), each regular file is opened for writing without
truncating it. Nothing of the image is changed by a successful try.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import stat
import sys

SKIP = ("/proc", "/sys", "/dev")
PROBE_NAME = f".fleetscale-write-probe-{os.getpid()}"


def mounts() -> dict[str, dict[str, object]]:
    """/proc/self/mountinfo by mount point: per-mount options, file system type."""
    found: dict[str, dict[str, object]] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            found[fields[4]] = {"options": fields[5].split(","), "fstype": fields[sep + 1]}
    return found


def walk() -> tuple[list[str], list[str]]:
    """Every directory (listable or not) and regular file below /, but SKIP."""
    dirs: list[str] = []
    files: list[str] = []
    stack = ["/"]
    while stack:
        d = stack.pop()
        dirs.append(d)
        try:
            with os.scandir(d) as entries:
                for e in entries:
                    if e.path in SKIP:
                        continue
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        files.append(e.path)
        except OSError:
            pass  # not listable: the directory itself is still tried
    return dirs, files


def try_writes() -> dict[str, object]:
    dirs, files = walk()
    writable_dirs: list[dict[str, object]] = []
    writable_files: list[str] = []
    refusals: dict[str, int] = {}

    def refused(e: OSError) -> None:
        name = errno.errorcode.get(e.errno or 0, str(e.errno))
        refusals[name] = refusals.get(name, 0) + 1

    for d in dirs:
        probe = os.path.join(d, PROBE_NAME)
        try:
            fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except OSError as e:
            refused(e)
            continue
        os.close(fd)
        os.unlink(probe)
        st = os.stat(d)
        writable_dirs.append(
            {"path": d, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
        )
    for path in files:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as e:
            refused(e)
            continue
        os.close(fd)
        writable_files.append(path)
    return {
        "dirs_tried": len(dirs),
        "files_tried": len(files),
        "writable_dirs": writable_dirs,
        "writable_files": writable_files,
        "refusals": refusals,
    }


def process_status() -> dict[str, str]:
    with open("/proc/self/status", encoding="utf-8") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def pem_digests(text: str) -> list[str]:
    """sha256 of each certificate of a PEM text (its base64 body, whitespace removed)."""
    blocks = text.split("-----BEGIN CERTIFICATE-----")[1:]
    bodies = ("".join(b.split("-----END CERTIFICATE-----")[0].split()) for b in blocks)
    return [hashlib.sha256(body.encode()).hexdigest() for body in bodies]


def certificates(path: str = "/etc/ssl/certs/ca-certificates.crt") -> list[str]:
    """The certificates of the CA bundle, as pem_digests."""
    try:
        with open(path, encoding="ascii") as f:
            return pem_digests(f.read())
    except OSError:
        return []


def python() -> dict[str, object]:
    fleetscale = importlib.util.find_spec("fleetscale")
    return {
        "version": list(sys.version_info[:3]),
        "executable": sys.executable,
        "executable_resolved": os.path.realpath(sys.executable),
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "fleetscale": fleetscale.origin if fleetscale else None,
        "pip_importable": importlib.util.find_spec("pip") is not None,
        "on_path": {tool: shutil.which(tool) for tool in ("uv", "pip", "pip3", "python")},
        "distributions": sorted(
            {(d.metadata["Name"], d.version) for d in importlib.metadata.distributions()}
        ),
    }


def main() -> None:
    tmp = os.statvfs("/tmp")
    status = process_status()
    report = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "status": {
            k: status.get(k, "")
            for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")
        },
        "mounts": mounts(),
        "tmp_bytes": tmp.f_blocks * tmp.f_frsize,
        "paths_exist": {p: os.path.lexists(p) for p in ("/opt/uv", "/src", "/usr/local/bin/uv")},
        "certificates": certificates(),
        "python": python(),
        **try_writes(),
    }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
