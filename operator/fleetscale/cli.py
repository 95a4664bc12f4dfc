"""The `fleetscale` command line: run the operator, print CRDs, and the offline tools.

Role: parse arguments and hand over to the part that does the work; imports are lazy so that
`fleetscale crd` needs neither kopf nor a cluster. Caller: ``python -m fleetscale``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fleetscale import __version__


def _cmd_crd(args: argparse.Namespace) -> int:
    from fleetscale.api.crdgen import crd_manifest, render_yaml
    from fleetscale.api.resources import ALL_CRDS

    rendered = {f"{spec.name}.yaml": render_yaml(crd_manifest(spec)) for spec in ALL_CRDS}
    if args.write is None and args.check is None:
        sys.stdout.write("---\n".join(rendered.values()))
        return 0
    directory = Path(args.write or args.check)
    if args.write is not None:
        directory.mkdir(parents=True, exist_ok=True)
        for filename, text in rendered.items():
            (directory / filename).write_text(text, encoding="utf-8")
        return 0
    stale = [
        filename
        for filename, text in rendered.items()
        if not (directory / filename).is_file()
        or (directory / filename).read_text(encoding="utf-8") != text
    ]
    if stale:
        print(
            f"{directory}: out of date with the models: {', '.join(stale)}; "
            "run `make crds` and commit the result",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import os

    from fleetscale.settings import SettingsError, load_settings

    try:
        settings = load_settings(
            os.environ,
            {
                "prometheus_url": args.prometheus_url,
                "prometheus_bearer_token_file": args.prometheus_bearer_token_file,
                "prometheus_ca_file": args.prometheus_ca_file,
                "prometheus_allowed_urls": args.prometheus_allowed_urls,
                "enforce_namespace": args.enforce_namespace,
                "namespace_label": args.namespace_label,
                "namespaces": args.namespaces,
                "log_format": args.log_format,
                "log_level": args.log_level,
                "http_port": args.http_port,
                "leader_election": args.leader_election,
                "lease_name": args.lease_name,
                "lease_namespace": args.lease_namespace,
                "identity": args.identity,
                "shards": args.shards,
            },
        )
    except SettingsError as error:
        print(f"fleetscale run: {error}", file=sys.stderr)
        return 2
    from fleetscale.controller.handlers import run_operator
    from fleetscale.controller.wiring import (
        kubernetes_accelerator_pool_dependencies,
        kubernetes_dependencies,
    )
    from fleetscale.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    return run_operator(settings, kubernetes_dependencies, kubernetes_accelerator_pool_dependencies)


def _cmd_explain(args: argparse.Namespace) -> int:
    import os

    from fleetscale.explain import run_explain
    from fleetscale.settings import Settings, SettingsError, load_settings

    # The operator's default Prometheus and its credential files, as `fleetscale run` reads
    # them (flags, else FLEETSCALE_PROMETHEUS_*): a pool that names no URL is read the same way.
    given = {
        "prometheus_url": args.prometheus_url,
        "prometheus_bearer_token_file": args.prometheus_bearer_token_file,
        "prometheus_ca_file": args.prometheus_ca_file,
    }
    # So are the URLs pools may name and the namespace enforcement: explain shows what the
    # operator would read, refusals included, when run with the operator's environment.
    from_env_only = ("prometheus_allowed_urls", "enforce_namespace", "namespace_label")
    environ = {
        key: value
        for key, value in os.environ.items()
        if key.startswith("FLEETSCALE_PROMETHEUS_")
        or key in ("FLEETSCALE_ENFORCE_NAMESPACE", "FLEETSCALE_NAMESPACE_LABEL")
    }
    try:
        loaded = load_settings(environ, given)
    except SettingsError as error:
        print(f"fleetscale explain: {error}", file=sys.stderr)
        return 2
    settings = Settings(**{key: getattr(loaded, key) for key in (*given, *from_env_only)})
    return run_explain(
        args.namespace,
        args.pool,
        settings=settings,
        kubeconfig=args.kubeconfig,
        context=args.context,
        output=args.output,
    )


def _cmd_haproxy_agent(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from fleetscale.explain import _load_api_client
    from fleetscale.gateways.base import GatewayError
    from fleetscale.gateways.haproxy import HAProxyShedAgent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        agent = HAProxyShedAgent.build(
            _load_api_client(args.kubeconfig, None),
            namespace=args.namespace,
            config_map=args.config_map,
            socket_path=args.socket,
            map_path=args.map,
            text_map_path=args.text_map,
        )
    except GatewayError as error:
        print(f"fleetscale haproxy-agent: {error}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await agent.run(args.interval, stop)

    asyncio.run(main())
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from fleetscale.sim.command import simulate

    return simulate(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetscale",
        description="Size LLM inference fleets (replicas and GPU nodes) to their demand.",
    )
    parser.add_argument("--version", action="version", version=f"fleetscale {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    crd = commands.add_parser("crd", help="print the CustomResourceDefinitions (or write/check)")
    target = crd.add_mutually_exclusive_group()
    target.add_argument("--write", metavar="DIR", help="write one YAML file per CRD into DIR")
    target.add_argument("--check", metavar="DIR", help="exit 1 if DIR differs from the models")
    crd.set_defaults(handler=_cmd_crd)

    explain = commands.add_parser(
        "explain",
        help="show, for one InferencePool, the last observation, the plan and the reason for "
        "each number (reads only, never acts)",
    )
    explain.add_argument("pool", metavar="POOL", help="name of the InferencePool")
    explain.add_argument("-n", "--namespace", required=True, help="namespace of the pool")
    explain.add_argument(
        "--prometheus-url",
        help="Prometheus for pools that name none [FLEETSCALE_PROMETHEUS_URL]",
    )
    explain.add_argument(
        "--prometheus-bearer-token-file",
        help="token file for that Prometheus [FLEETSCALE_PROMETHEUS_BEARER_TOKEN_FILE]",
    )
    explain.add_argument(
        "--prometheus-ca-file",
        help="CA bundle that verifies that Prometheus [FLEETSCALE_PROMETHEUS_CA_FILE]",
    )
    explain.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube)")
    explain.add_argument("--context", help="kubeconfig context")
    explain.add_argument("-o", "--output", choices=("text", "json"), default="text")
    explain.set_defaults(handler=_cmd_explain)

    run = commands.add_parser(
        "run",
        help="run the operator (flags override the FLEETSCALE_* environment variables)",
    )
    run.add_argument("--prometheus-url", help="default Prometheus URL [FLEETSCALE_PROMETHEUS_URL]")
    run.add_argument(
        "--prometheus-bearer-token-file",
        metavar="FILE",
        help="bearer token for the default Prometheus, re-read when the file changes "
        "[FLEETSCALE_PROMETHEUS_BEARER_TOKEN_FILE]",
    )
    run.add_argument(
        "--prometheus-ca-file",
        metavar="FILE",
        help="PEM CA bundle of the default Prometheus, re-read when the file changes "
        "[FLEETSCALE_PROMETHEUS_CA_FILE]",
    )
    run.add_argument(
        "--prometheus-allowed-urls",
        metavar="URLS",
        help="comma list of base URLs pools may name besides the default one; * allows any "
        "[FLEETSCALE_PROMETHEUS_ALLOWED_URLS]",
    )
    run.add_argument(
        "--enforce-namespace",
        choices=("true", "false"),
        help="limit every selector of a pool's queries to the pool's namespace "
        "[FLEETSCALE_ENFORCE_NAMESPACE]",
    )
    run.add_argument(
        "--namespace-label",
        metavar="LABEL",
        help='the Prometheus label that carries the namespace, default "namespace" '
        "[FLEETSCALE_NAMESPACE_LABEL]",
    )
    run.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        metavar="NS",
        help="watch this namespace (repeatable; default: all) [FLEETSCALE_NAMESPACES]",
    )
    run.add_argument("--log-format", help="json or console [FLEETSCALE_LOG_FORMAT]")
    run.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR [FLEETSCALE_LOG_LEVEL]")
    run.add_argument("--http-port", help="/metrics, /healthz, /readyz port [FLEETSCALE_HTTP_PORT]")
    run.add_argument(
        "--leader-election",
        help="true (default): elect one acting replica on a Lease; false: act alone "
        "[FLEETSCALE_LEADER_ELECTION]",
    )
    run.add_argument("--lease-name", help="the Lease's name [FLEETSCALE_LEASE_NAME]")
    run.add_argument(
        "--lease-namespace",
        help="the Lease's namespace (default: the pod's own) [FLEETSCALE_LEASE_NAMESPACE]",
    )
    run.add_argument(
        "--identity",
        help="this replica's holder identity (default: the pod name) [FLEETSCALE_IDENTITY]",
    )
    run.add_argument(
        "--shards",
        help="split the pools into this many shards, one Lease each, shared by the replicas "
        "(default 1) [FLEETSCALE_SHARDS]",
    )
    run.set_defaults(handler=_cmd_run)

    agent = commands.add_parser(
        "haproxy-agent",
        help="keep an HAProxy's shed maps at a pool's shed-load ConfigMap (Runtime API)",
    )
    agent.add_argument("--namespace", required=True, help="the InferencePool's namespace")
    agent.add_argument("--config-map", required=True, help="the pool's spec.shedLoad.configMapName")
    agent.add_argument("--socket", required=True, help="HAProxy's stats socket (level admin)")
    agent.add_argument(
        "--map", required=True, help="the map file HAProxy's configuration reads numbers from"
    )
    agent.add_argument("--text-map", help="the map file it reads the message from")
    agent.add_argument("--interval", type=float, default=1.0, help="seconds between reads (1)")
    agent.add_argument("--kubeconfig", help="default: in-cluster, else $KUBECONFIG")
    agent.set_defaults(handler=_cmd_haproxy_agent)

    simulate = commands.add_parser(
        "simulate",
        help="replay request traces through a simulated GPU fleet under autoscaling policies",
    )
    simulate.add_argument(
        "--scenario",
        dest="scenarios",
        action="append",
        metavar="NAME",
        help="scenario to run (repeatable; default: the standard set): conv-70b, code-70b, "
        "diurnal-70b, flash-70b, mooncake-8b, tiny",
    )
    simulate.add_argument(
        "--policy",
        dest="policies",
        action="append",
        metavar="NAME",
        help="policy to run (repeatable; default: all; the oracle always runs): fleetscale, "
        "fleetscale-offered, fleetscale-forecast, hpa-gpu, hpa-kv, hpa-conc, keda-queue-3, "
        "keda-queue-5, keda-queue-10, keda-conc-50, keda-conc-75, keda-conc-100, kpa, static, "
        "oracle",
    )
    simulate.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="multiply each scenario's load (more copies of a trace, a scaled rate; default 1)",
    )
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument(
        "--traces-dir",
        metavar="DIR",
        help="request traces (default: $FLEETSCALE_TRACES_DIR, else ../shared/traces)",
    )
    simulate.add_argument(
        "--out", metavar="DIR", default="out/sim", help="JSON and plots go here (out/sim)"
    )
    simulate.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    simulate.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    simulate.add_argument(
        "--bench",
        action="store_true",
        help="run the published benchmark: docs/benchmark-results.md, docs/bench/*.png, "
        "and the README section between the bench markers",
    )
    simulate.add_argument(
        "--sweep",
        action="store_true",
        help="run the robustness sweep (every standard scenario on both model profiles, at "
        "several loads and seeds): median and worst case per policy, docs/benchmark-sweep.md",
    )
    simulate.add_argument(
        "--sweep-seeds", metavar="LIST", default="1,2,3", help="seeds of the sweep (1,2,3)"
    )
    simulate.add_argument(
        "--sweep-rates", metavar="LIST", default="0.5,1,2", help="loads of the sweep (0.5,1,2)"
    )
    simulate.add_argument(
        "--sweep-profiles", metavar="LIST", default="70b,8b", help="model profiles (70b,8b)"
    )
    simulate.add_argument(
        "--sweep-policies",
        metavar="LIST",
        default=None,
        help="policies of the sweep (default: fleetscale, the HPA, KEDA and static baselines "
        "and the oracle; the oracle always runs)",
    )
    simulate.add_argument(
        "--sweep-jobs",
        type=int,
        default=1,
        metavar="N",
        help="run the sweep's cases in N processes (1); the figures do not depend on it",
    )
    simulate.add_argument("--readme", metavar="FILE", help="README to refresh (with --bench)")
    simulate.add_argument(
        "--compare-gateways",
        action="store_true",
        help="fleetscale with an all-or-nothing gateway against one that refuses the decided "
        "fraction, lower priority first (default scenario: flash-70b)",
    )
    simulate.add_argument(
        "--low-priority-share",
        type=float,
        default=0.5,
        metavar="SHARE",
        help="share of requests marked lower priority (with --compare-gateways; 0.5)",
    )
    simulate.add_argument(
        "--docs-dir",
        metavar="DIR",
        default="docs",
        help="docs directory (with --bench or --sweep)",
    )
    simulate.set_defaults(handler=_cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result
