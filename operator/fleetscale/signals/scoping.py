"""Limit a pool's PromQL to the pool's namespace, as prom-label-proxy enforces a label.

Role: on a Prometheus shared by several tenants, a pool's queries run with the operator's
credentials and their values land in the pool's status. ``enforce_namespace`` rewrites a query
so that every vector selector (also inside range selectors, subqueries and function arguments)
carries ``namespace="<the pool's namespace>"``, or refuses it with a reason. It works on the
syntax tree of a real PromQL parser (promql-parser, the Python binding of GreptimeDB's Rust
parser), never on the text: a matcher cannot be smuggled past it through quoting, comments or
odd spacing.

Rules, per selector:
- no matcher on the namespace label: ``label="<namespace>"`` is added;
- ``label="<namespace>"`` already there: kept as it is;
- any other matcher on the label (another namespace, ``!=``, ``=~``, ``!~``): refused, because
  it can only widen or contradict what the pool may see, and a silent rewrite would hide that;
- alternative matcher groups (``{a="x" or b="y"}``): refused (each group would need its own).
Queries without selectors (``vector(1)``, literals) read no series and pass unchanged.

The rewritten query is printed by the parser's own printer, which does not escape string
values; values are therefore escaped before printing. As a guard against any other printer
difference, the printed text is parsed again and must give exactly the enforced tree; if not,
the query is refused rather than sent in a form that may mean something else. Pure: no I/O.
Callers: the controller (every query of a pool when ``FLEETSCALE_ENFORCE_NAMESPACE`` is on).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import promql_parser

from fleetscale.signals.base import Refusal

# Namespace names as the API server accepts them (DNS-1123 labels): nothing to escape.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_PARSER_MESSAGE_MAX_CHARS = 160
# Escapes of a double-quoted PromQL string that the parser reads back.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@functools.lru_cache(maxsize=4096)
def enforce_namespace(promql: str, namespace: str, label: str = "namespace") -> str | Refusal:
    """``promql`` with every selector limited to ``namespace``, or why that is not possible."""
    if not _NAMESPACE.fullmatch(namespace):
        return Refusal(f"{namespace!r} is not a namespace name")
    if not _LABEL_NAME.fullmatch(label):
        return Refusal(f"{label!r} is not a label name")
    try:
        return _enforce(promql, namespace, label)
    except RecursionError:
        return Refusal("the query is nested too deeply to be limited to a namespace")
    except BaseException as error:
        # A panic inside the Rust parser surfaces as pyo3's PanicException, a BaseException;
        # it means "this query cannot be handled", never "stop the operator".
        if type(error).__name__ != "PanicException":
            raise
        return Refusal("the query could not be parsed")


def _enforce(promql: str, namespace: str, label: str) -> str | Refusal:
    try:
        tree = promql_parser.parse(promql)
    except ValueError as error:
        message = str(error).splitlines()[0] if str(error) else "parse error"
        return Refusal(f"the query is not valid PromQL: {message[:_PARSER_MESSAGE_MAX_CHARS]}")

    problems: list[str] = []

    def check(node: Any) -> bool | None:
        if isinstance(node, promql_parser.VectorSelector):
            problem = _selector_problem(node, namespace, label)
            if problem is not None:
                problems.append(problem)
                return False  # one reason is enough
        return None

    promql_parser.walk(tree, pre_visit=check)
    if problems:
        return Refusal(problems[0])

    # The tree the query must mean, and a tree whose printout spells that tree.
    enforced = promql_parser.transform(
        promql_parser.parse(promql), post_visit=_rebuild(namespace, label, escapes=1)
    )
    printable = promql_parser.transform(
        promql_parser.parse(promql), post_visit=_rebuild(namespace, label, escapes=2)
    )
    text = str(printable)
    try:
        faithful = repr(promql_parser.parse(text)) == repr(enforced)
    except ValueError:
        faithful = False
    if not faithful:
        return Refusal(
            "the query cannot be rewritten faithfully with the namespace matcher; "
            "simplify it (e.g. give subqueries an explicit step)"
        )
    return text


def _selector_problem(selector: Any, namespace: str, label: str) -> str | None:
    matchers = selector.matchers
    what = f"the selector of {selector.name}" if selector.name else "a selector"
    if matchers.or_matchers:
        return f"{what} uses alternative matchers (or), which cannot be limited to a namespace"
    for matcher in matchers.matchers:
        if matcher.name != label:
            continue
        if matcher.op == promql_parser.MatchOp.Equal and matcher.value == namespace:
            continue
        # The parser prints the matcher as written (operator and value), unescaped.
        return f'{what} matches {matcher}; only {label}="{namespace}" is allowed'

    return None


def _rebuild(namespace: str, label: str, *, escapes: int) -> Callable[[Any], Any]:
    """A transform callback that rebuilds selectors (with the namespace) and string literals.

    Each rebuilt node is parsed from text whose values are escaped ``escapes`` times: once
    gives the node with its true values; twice gives a node whose values, printed raw by the
    parser's printer, come out correctly escaped.
    """

    def escaped(value: str) -> str:
        for _ in range(escapes):
            value = _escape(value)
        return value

    def rebuild(node: Any) -> Any:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = list(node.matchers.matchers)
            scoped = any(m.name == label for m in matchers)
            if not scoped:
                equal = promql_parser.MatchOp.Equal
                matchers.append(promql_parser.Matcher(equal, label, namespace))
            node.matchers = promql_parser.Matchers(
                [promql_parser.Matcher(m.op, m.name, escaped(m.value)) for m in matchers]
            )
            return promql_parser.parse(str(node))
        if isinstance(node, promql_parser.StringLiteral):
            return promql_parser.parse(f'"{escaped(node.val)}"')
        return None

    return rebuild


def _escape(value: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in value)
