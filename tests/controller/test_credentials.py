"""Credential files of the default Prometheus: cached, re-read when they change (rotation)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetscale.controller.credentials import CredentialFileError, CredentialFiles


def test_an_unchanged_file_is_read_once(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n", encoding="utf-8")
    files = CredentialFiles()

    assert [files.read(token) for _ in range(3)] == ["first\n"] * 3
    assert files.reads == 1


def test_a_rewritten_file_is_read_again(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first", encoding="utf-8")
    files = CredentialFiles()
    assert files.read(token) == "first"

    token.write_text("second", encoding="utf-8")
    stamp = token.stat().st_mtime_ns + 1_000_000_000  # a later mtime, whatever the fs precision
    os.utime(token, ns=(stamp, stamp))

    assert files.read(token) == "second"
    assert files.reads == 2


def test_a_rotated_secret_mount_is_followed(tmp_path: Path) -> None:
    """The kubelet writes a new directory and swaps the `..data` symlink: a new inode."""
    first, second = tmp_path / "..2026_11_26_1", tmp_path / "..2026_11_26_2"
    for directory, text in ((first, "old-token"), (second, "new-token")):
        directory.mkdir()
        (directory / "token").write_text(text, encoding="utf-8")
    data = tmp_path / "..data"
    data.symlink_to(first.name)
    (tmp_path / "token").symlink_to("..data/token")
    # Same size and mtime in both versions: only the inode tells them apart.
    stamp = (first / "token").stat().st_mtime_ns
    os.utime(second / "token", ns=(stamp, stamp))
    files = CredentialFiles()
    assert files.read(tmp_path / "token") == "old-token"

    swap = tmp_path / "..data_tmp"
    swap.symlink_to(second.name)
    swap.replace(data)

    assert files.read(tmp_path / "token") == "new-token"


@pytest.mark.parametrize("content", ["", " \n"], ids=["empty", "blank"])
def test_an_empty_file_is_an_error(tmp_path: Path, content: str) -> None:
    token = tmp_path / "token"
    token.write_text(content, encoding="utf-8")
    with pytest.raises(CredentialFileError, match=f"{token} is empty"):
        CredentialFiles().read(token)


def test_a_missing_file_is_an_error_naming_it_and_its_cache_is_dropped(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t", encoding="utf-8")
    files = CredentialFiles()
    files.read(token)
    token.unlink()

    with pytest.raises(CredentialFileError, match=f"cannot read {token}: No such file"):
        files.read(token)
    token.write_text("t", encoding="utf-8")
    assert files.read(token) == "t"
