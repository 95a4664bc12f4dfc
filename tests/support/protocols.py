"""Does a class implement a ``typing.Protocol``? Checked at run time, member by member.

Role: mypy checks the package, not the tests, so an adapter's fake could drift from its
Protocol (a renamed parameter, a method made synchronous, a member missing) and every test
that uses it would still pass. ``protocol_mismatches`` compares a class with a Protocol the
way a caller sees it: every public member is there; a method is a method, ``async`` when the
Protocol's is, and takes the Protocol's parameters by the same names and kinds (extra
parameters need defaults); a property or attribute exists on the class. Annotations are not
compared. Callers: the adapters' contract tests (actuators, signals, nodepools).
"""

from __future__ import annotations

import inspect
from typing import Any

_OBJECT_MEMBERS = frozenset(vars(object)) | {"__protocol_attrs__", "__non_callable_proto_members__"}


def protocol_members(protocol: type) -> dict[str, Any]:
    """The Protocol's public members (methods, properties, annotated attributes) by name."""
    members: dict[str, Any] = {}
    for klass in reversed(protocol.__mro__):
        if not getattr(klass, "_is_protocol", False) or klass.__module__ == "typing":
            continue
        for name in getattr(klass, "__annotations__", {}):
            if not name.startswith("_"):
                members.setdefault(name, None)
        for name, value in vars(klass).items():
            if not name.startswith("_") and name not in _OBJECT_MEMBERS:
                members[name] = value
    return members


def _parameters(function: Any) -> list[inspect.Parameter]:
    parameters = list(inspect.signature(function).parameters.values())
    return parameters[1:]  # without self


def _method_mismatches(name: str, wanted: Any, found: Any) -> list[str]:
    if not callable(found):
        return [f"{name} is not a method"]
    problems = []
    if inspect.iscoroutinefunction(wanted) != inspect.iscoroutinefunction(found):
        kind = "async" if inspect.iscoroutinefunction(wanted) else "synchronous"
        problems.append(f"{name} must be {kind}")
    wanted_parameters, found_parameters = _parameters(wanted), _parameters(found)
    takes_any_keyword = any(p.kind is p.VAR_KEYWORD for p in found_parameters)
    for index, parameter in enumerate(wanted_parameters):
        match = next((p for p in found_parameters if p.name == parameter.name), None)
        if match is None:
            if not takes_any_keyword:
                problems.append(f"{name} lacks the parameter {parameter.name!r}")
        elif match.kind != parameter.kind:
            problems.append(f"{name}'s {parameter.name!r} is {match.kind.description}")
        elif (
            parameter.kind is parameter.POSITIONAL_OR_KEYWORD
            and found_parameters.index(match) != index
        ):
            problems.append(f"{name}'s {parameter.name!r} is not at position {index + 1}")
        elif parameter.default is not parameter.empty and match.default is match.empty:
            problems.append(f"{name}'s {parameter.name!r} needs a default")
    wanted_names = {p.name for p in wanted_parameters}
    for parameter in found_parameters:
        extra = parameter.name not in wanted_names
        optional = parameter.default is not parameter.empty or parameter.kind in (
            parameter.VAR_POSITIONAL,
            parameter.VAR_KEYWORD,
        )
        if extra and not optional:
            problems.append(f"{name} requires the extra parameter {parameter.name!r}")
    return problems


def protocol_mismatches(implementation: type, protocol: type) -> list[str]:
    """Why ``implementation`` does not implement ``protocol``; empty when it does."""
    problems = []
    for name, wanted in protocol_members(protocol).items():
        fields = getattr(implementation, "__dataclass_fields__", {})
        if not hasattr(implementation, name) and name not in fields:
            problems.append(f"{name} is missing")
        elif inspect.isfunction(wanted):
            problems += _method_mismatches(name, wanted, getattr(implementation, name))
    return problems
