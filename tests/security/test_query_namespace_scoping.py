"""A pool's queries against a shared Prometheus see only its own namespace (#11).

With ``FLEETSCALE_ENFORCE_NAMESPACE`` on, every selector of a pool's PromQL gets the pool's
namespace as a matcher, the way prom-label-proxy enforces a label: through a PromQL parser,
never by editing the text. A query that cannot be enforced is refused with a reason and never
sent. These tests pin the pure rewrite (``signals.scoping``) and its use by the controller.
"""

from __future__ import annotations

import json
from typing import Any

import promql_parser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetscale.actuators.base import ScaleTargetRef
from fleetscale.actuators.fake import (
    FakeScaleActuator,
)
from fleetscale.controller.inferencepools import (
    InferencePoolDependencies,
    InferencePoolRef,
    reconcile,
)
from fleetscale.settings import Settings, load_settings
from fleetscale.signals.base import Refusal
from fleetscale.signals.fake import FakeSignalSource
from fleetscale.signals.scoping import enforce_namespace
from support.dependencies import fake_pool_dependencies

NS = "team-a"


def selectors(promql: str) -> list[str]:
    """Every vector selector of a query, as the parser prints it."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(str(node))

    promql_parser.walk(promql_parser.parse(promql), pre_visit=visit)
    return found


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            'sum(vllm:num_requests_waiting{namespace="team-a",model_name="llama"})',
            'sum(vllm:num_requests_waiting{namespace="team-a",model_name="llama"})',
            id="queue-already-scoped",
        ),
        pytest.param(
            'sum(vllm:num_requests_waiting{model_name="llama"})',
            'sum(vllm:num_requests_waiting{model_name="llama",namespace="team-a"})',
            id="queue",
        ),
        pytest.param(
            'avg(DCGM_FI_DEV_GPU_UTIL{pod=~"vllm-llama-70b-.*"})',
            'avg(DCGM_FI_DEV_GPU_UTIL{pod=~"vllm-llama-70b-.*",namespace="team-a"})',
            id="gpu",
        ),
        pytest.param(
            '100 * avg(vllm:kv_cache_usage_perc{model_name="m"})',
            '100 * avg(vllm:kv_cache_usage_perc{model_name="m",namespace="team-a"})',
            id="kv-cache-percent",
        ),
        pytest.param(
            "avg(vllm:gpu_cache_usage_perc) * 100",
            'avg(vllm:gpu_cache_usage_perc{namespace="team-a"}) * 100',
            id="kv-cache-readme",
        ),
        pytest.param(
            "histogram_quantile(0.9, sum by (le) "
            '(rate(vllm:time_to_first_token_seconds_bucket{model_name="m"}[1m])))',
            "histogram_quantile(0.9, sum by (le)(rate("
            'vllm:time_to_first_token_seconds_bucket{model_name="m",namespace="team-a"}[1m])))',
            id="ttft-p90",
        ),
        pytest.param(
            "sum(rate(vllm:prompt_tokens_total[1m]))",
            'sum(rate(vllm:prompt_tokens_total{namespace="team-a"}[1m]))',
            id="token-rate",
        ),
        pytest.param(
            '{__name__=~".+"}',
            '{__name__=~".+",namespace="team-a"}',
            id="every-metric",
        ),
        pytest.param(
            "sum(a) / sum(b offset 5m) or vector(0)",
            'sum(a{namespace="team-a"}) / sum(b{namespace="team-a"} offset 5m) or  vector(0)',
            id="binary-and-literal-vector",
        ),
        pytest.param(
            'max_over_time(sum(x{job="v"})[10m:1m])',
            'max_over_time(sum(x{job="v",namespace="team-a"})[10m:1m])',
            id="subquery",
        ),
        pytest.param(
            'label_replace(x{a=~"\\\\d+"}, "namespace", "team-b", "", "")',
            'label_replace(x{a=~"\\\\d+",namespace="team-a"}, "namespace", "team-b", "", "")',
            id="escapes-survive",
        ),
        pytest.param("scalar(vector(3))", "scalar(vector(3))", id="no-selector"),
    ],
)
def test_every_selector_gets_the_pools_namespace(query: str, expected: str) -> None:
    scoped = enforce_namespace(query, NS)
    assert scoped == expected
    assert isinstance(scoped, str)
    for selector in selectors(scoped):
        assert 'namespace="team-a"' in selector


@pytest.mark.parametrize(
    ("query", "reason_part"),
    [
        pytest.param('sum(x{namespace="team-b"})', 'namespace="team-b"', id="other-namespace"),
        pytest.param('sum(x{namespace!="team-a"})', 'namespace!="team-a"', id="not-own"),
        pytest.param('sum({__name__=~".+", namespace=~".+"})', "namespace=~", id="any-namespace"),
        pytest.param('sum(x{namespace=~"team-a|team-b"})', "namespace=~", id="regex"),
        pytest.param('sum(x{job="a" or job="b"})', "alternative", id="or-matchers"),
        pytest.param("max_over_time(x[5m:])", "rewritten faithfully", id="printer-would-change-it"),
        pytest.param("sum(rate(x[5m]) by", "not valid PromQL", id="unparsable"),
    ],
)
def test_queries_that_cannot_be_enforced_are_refused(query: str, reason_part: str) -> None:
    refused = enforce_namespace(query, NS)
    assert isinstance(refused, Refusal)
    assert reason_part in refused.reason


def test_another_label_name_can_carry_the_namespace() -> None:
    scoped = enforce_namespace("sum(DCGM_FI_DEV_GPU_UTIL)", NS, label="exported_namespace")
    assert scoped == 'sum(DCGM_FI_DEV_GPU_UTIL{exported_namespace="team-a"})'


def test_enforcement_is_off_by_default_and_on_by_a_setting() -> None:
    assert not load_settings({}).enforce_namespace
    assert load_settings({"FLEETSCALE_ENFORCE_NAMESPACE": "true"}).enforce_namespace


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_matcher = st.builds(
    lambda label, op, value: f"{label}{op}{_quoted(value)}",
    st.sampled_from(["namespace", "pod", "job", "model_name"]),
    st.sampled_from(["=", "!=", "=~", "!~"]),
    st.sampled_from(["team-a", "team-b", "", ".+", "vllm-.*", 'a"b', "a\\b", "x\\.y"]),
)
_selector = st.builds(
    lambda name, matchers: f"{name}{{{','.join(matchers)}}}",
    st.sampled_from(["up", "vllm:num_requests_waiting", "DCGM_FI_DEV_GPU_UTIL"]),
    st.lists(_matcher, max_size=3),
) | st.just('{__name__=~".+"}')
_query = st.recursive(
    _selector | st.just("vector(1)"),
    lambda inner: st.one_of(
        st.builds("sum({})".format, inner),
        st.builds("sum by (le) ({})".format, inner),
        st.builds("({}) * 100".format, inner),
        st.builds("{} / {}".format, inner, inner),
        st.builds("rate({}[5m])".format, _selector),
        st.builds("max_over_time(({})[10m:1m])".format, inner),
        st.builds('label_replace({}, "namespace", "team-b", "", "")'.format, inner),
        st.builds("histogram_quantile(0.9, {})".format, inner),
    ),
    max_leaves=4,
)


def _selector_matchers(promql: str) -> list[list[tuple[str, str, str]]]:
    """(label, operator, value) of every matcher, per vector selector, in tree order."""
    found: list[list[tuple[str, str, str]]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append([(m.name, str(m.op), m.value) for m in node.matchers.matchers])

    promql_parser.walk(promql_parser.parse(promql), pre_visit=visit)
    return found


@given(query=_query)
def test_no_selector_ever_leaves_the_namespace(query: str) -> None:
    own = ("namespace", str(promql_parser.MatchOp.Equal), NS)
    try:
        before = _selector_matchers(query)
    except ValueError:
        assert isinstance(enforce_namespace(query, NS), Refusal)  # not PromQL: never sent
        return
    foreign = any(m[0] == "namespace" and m != own for sel in before for m in sel)
    scoped = enforce_namespace(query, NS)
    if foreign:
        assert isinstance(scoped, Refusal)
        return
    assert isinstance(scoped, str), scoped
    after = _selector_matchers(scoped)
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        # Every selector is limited to the pool's namespace: added once, or kept as written.
        expected = [own] * old.count(own) if own in old else [own]
        assert [m for m in new if m[0] == "namespace"] == expected
        # And nothing else about it changed.
        assert [m for m in new if m[0] != "namespace"] == [m for m in old if m[0] != "namespace"]


TARGET = ScaleTargetRef(namespace=NS, api_version="apps/v1", kind="Deployment", name="vllm")
POOL = InferencePoolRef(namespace=NS, name="llama", uid="uid-1", generation=1)


def _deps(signals: FakeSignalSource, settings: Settings) -> InferencePoolDependencies:
    scaler = FakeScaleActuator(follow_immediately=True)
    scaler.add(TARGET, 2, accelerators_per_replica=1)
    return fake_pool_dependencies(
        signals=signals,
        scaler=scaler,
        settings=settings,
    )


def _pool(queue: str, gpu: str) -> dict[str, Any]:
    return {
        "targetRef": {"name": "vllm"},
        "replicas": {"min": 1, "max": 8},
        "metrics": {
            "engine": "custom",
            "queueDepth": {"query": queue},
            "gpuUtilization": {"query": gpu},
        },
    }


async def test_the_controller_sends_only_scoped_queries() -> None:
    signals = FakeSignalSource()
    settings = Settings(prometheus_url="http://prom:9090", enforce_namespace=True)
    await reconcile(POOL, _pool("sum(q)", "avg(g)"), None, _deps(signals, settings), 1.8e9)
    [call] = signals.calls
    assert sorted(q.promql for q in call.queries) == [
        'avg(g{namespace="team-a"})',
        'sum(q{namespace="team-a"})',
    ]


async def test_the_controller_refuses_a_query_it_cannot_scope_and_says_why() -> None:
    signals = FakeSignalSource()
    settings = Settings(prometheus_url="http://prom:9090", enforce_namespace=True)
    result = await reconcile(
        POOL,
        _pool('sum(q{namespace="team-b"})', "avg(g)"),
        None,
        _deps(signals, settings),
        1.8e9,
    )
    assert [q.promql for call in signals.calls for q in call.queries] == [
        'avg(g{namespace="team-a"})'
    ]
    status = json.loads(json.dumps(result.status))
    [available] = [c for c in status["conditions"] if c["type"] == "MetricsAvailable"]
    assert (available["status"], available["reason"]) == ("False", "QueryRefused")
    assert 'namespace="team-b"' in available["message"]
