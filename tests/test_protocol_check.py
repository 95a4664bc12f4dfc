"""The run-time Protocol check the adapters' contract tests rely on finds each kind of drift."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from support.protocols import protocol_members, protocol_mismatches


class Group(Protocol):
    @property
    def kind(self) -> str: ...

    async def resize(self, nodes: int, *, force: bool = False) -> None: ...

    async def remove(self, names: Sequence[str]) -> None: ...


class Conforming:
    kind = "conforming"

    async def resize(self, nodes: int, *, force: bool = False, dry_run: bool = False) -> None:
        return None

    async def remove(self, names: Sequence[str]) -> None:
        return None

    def helper_of_its_own(self) -> None:
        return None


@dataclass
class DataclassKind:
    kind: str

    async def resize(self, nodes: int, *, force: bool = False) -> None:
        return None

    async def remove(self, names: Sequence[str]) -> None:
        return None


class NoKind:
    async def resize(self, nodes: int, *, force: bool = False) -> None:
        return None

    async def remove(self, names: Sequence[str]) -> None:
        return None


class Synchronous(Conforming):
    def remove(self, names: Sequence[str]) -> None:  # type: ignore[override]
        return None


class Renamed(Conforming):
    async def remove(self, nodes: Sequence[str]) -> None:  # type: ignore[override]
        return None


class Swapped(Conforming):
    async def resize(self, force: bool = False, nodes: int = 0) -> None:  # type: ignore[override]
        return None


class PositionalForce(Conforming):
    async def resize(self, nodes: int, force: bool = False) -> None:  # type: ignore[override]
        return None


class RequiredForce(Conforming):
    async def resize(self, nodes: int, *, force: bool) -> None:  # type: ignore[override]
        return None


class ExtraRequired(Conforming):
    async def remove(self, names: Sequence[str], reason: str) -> None:  # type: ignore[override]
        return None


class NotAMethod(Conforming):
    remove: Any = "remove"


class AnyKeyword(Conforming):
    async def resize(self, nodes: int, **options: Any) -> None:  # type: ignore[override]
        return None


def test_members_are_the_public_ones() -> None:
    assert sorted(protocol_members(Group)) == ["kind", "remove", "resize"]


@pytest.mark.parametrize(
    ("implementation", "expected"),
    [
        pytest.param(Conforming, [], id="conforming-with-extra-optional-parameter"),
        pytest.param(DataclassKind, [], id="dataclass-field-without-default"),
        pytest.param(AnyKeyword, [], id="keyword-options-take-force"),
        pytest.param(NoKind, ["kind is missing"], id="missing-property"),
        pytest.param(Synchronous, ["remove must be async"], id="synchronous-method"),
        pytest.param(
            Renamed,
            ["remove lacks the parameter 'names'", "remove requires the extra parameter 'nodes'"],
            id="renamed-parameter",
        ),
        pytest.param(
            Swapped,
            ["resize's 'nodes' is not at position 1", "resize's 'force' is positional or keyword"],
            id="parameters-out-of-order",
        ),
        pytest.param(
            PositionalForce, ["resize's 'force' is positional or keyword"], id="kind-of-parameter"
        ),
        pytest.param(RequiredForce, ["resize's 'force' needs a default"], id="lost-default"),
        pytest.param(
            ExtraRequired, ["remove requires the extra parameter 'reason'"], id="extra-required"
        ),
        pytest.param(NotAMethod, ["remove is not a method"], id="attribute-for-a-method"),
    ],
)
def test_drift_is_reported(implementation: type, expected: list[str]) -> None:
    assert protocol_mismatches(implementation, Group) == expected
