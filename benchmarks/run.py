"""The one benchmark command: `python -m benchmarks [--quick | --full] [options]`.

Runs the five benchmarks of docs/benchmarks.md, prints a report as it goes (every figure
a ratio against a baseline measured in the same run, absolute times as context, the
machine noted), and optionally writes the results as JSON and plots as PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTIONS = ("overhead", "throughput", "login", "e2e", "scale", "load")
# Run only when asked for (`--only load`): minutes of load in --full.
ON_REQUEST = ("load",)

# quick: a smoke run (seconds); default: a few minutes; full: the figures of docs/benchmarks.md.
MODES: dict[str, dict[str, Any]] = {
    "quick": {"target": 0.002, "repeats": 3, "duration": 1, "rounds": 1, "connections": 4,
              "servers": ["waitress"], "throughput_stores": ["sqlite"], "sizes": [100, 1000], "scale_sample": 100,
              "e2e_algs": ["RSA-OAEP"], "e2e_clients": 1, "e2e_duration": 2.0, "e2e_max_logins": 3,
              "e2e_profile_logins": 2, "plugins": ["off", "metrics"], "raw_reads": False},
    "default": {"target": 0.01, "repeats": 21, "duration": 3, "rounds": 2, "connections": 4,
                "servers": ["waitress", "gunicorn"], "throughput_stores": ["memory", "sqlite", "redis"],
                "sizes": [1000, 10_000, 100_000], "scale_sample": 1000, "e2e_algs": ["RSA-OAEP", "ECDH-ES"],
                "e2e_clients": 2, "e2e_duration": 5.0, "e2e_max_logins": None, "e2e_profile_logins": 20,
                "plugins": ["off", "metrics", "structlog", "both"]},
    "full": {"target": 0.02, "repeats": 41, "duration": 5, "rounds": 3, "connections": 4,
             "servers": ["waitress", "gunicorn"], "throughput_stores": ["memory", "sqlite", "redis"],
             "sizes": [1000, 10_000, 100_000, 1_000_000], "scale_sample": 1000, "e2e_algs": ["RSA-OAEP", "ECDH-ES"],
             "e2e_clients": 2, "e2e_duration": 10.0, "e2e_max_logins": None, "e2e_profile_logins": 40,
             "plugins": ["off", "metrics", "structlog", "both"]},
}


@dataclass
class Context:
    mode: str
    workdir: Path
    keys_file: Path
    record: dict[str, Any]
    stores: list[str]
    scale_stores: list[str]
    target: float
    repeats: int
    duration: int
    rounds: int
    connections: int
    servers: list[str]
    throughput_stores: list[str]
    sizes: list[int]
    scale_sample: int
    e2e_algs: list[str]
    e2e_clients: int
    e2e_duration: float
    e2e_max_logins: int | None
    e2e_profile_logins: int
    plugins: list[str]
    gunicorn_workers: int = 2
    raw_reads: bool = True
    profile_always: bool = False
    redis: Any = None
    redis_store: Any = None
    redis_note: str = ""
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return self.mode == "quick"


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _sizes(text: str) -> list[int]:
    sizes = []
    for part in _list(text):
        value = float(part.replace("10^", "1e"))
        if value < 1 or value != int(value):
            raise argparse.ArgumentTypeError(f"{part} is not a whole number of sessions")
        sizes.append(int(value))
    return sorted(sizes)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a smoke run: tiny counts, a few seconds")
    mode.add_argument("--full", action="store_true", help="the documented run: longer, up to 10^6 sessions")
    p.add_argument("--only", type=_list, default=[s for s in SECTIONS if s not in ON_REQUEST],
                   help=f"sections, comma-separated: {','.join(SECTIONS)} ({','.join(ON_REQUEST)} only when named)")
    p.add_argument("--stores", type=_list, help="stores for parts 1, 2 and 5: memory,sqlite,redis")
    p.add_argument("--sizes", type=_sizes, help="stored-session counts for part 5, e.g. 1e3,1e5,1e6")
    p.add_argument("--servers", type=_list, help="servers for part 2: waitress,gunicorn")
    p.add_argument("--duration", type=int, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, help="wrk rounds per configuration (median taken)")
    p.add_argument("--connections", type=int, help="wrk connections")
    p.add_argument("--repeats", type=int, help="repeats of in-process timings (median taken)")
    p.add_argument("--batch-ms", type=float, help="milliseconds per timed batch in process")
    p.add_argument("--e2e-clients", type=int, help="concurrent scripted browsers for part 4")
    p.add_argument("--e2e-duration", type=float, help="seconds of load for part 4")
    p.add_argument("--profile", action="store_true", help="profile part 3 even when within target")
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    p.add_argument("--plots", type=Path, help="write PNG plots into this folder (needs matplotlib)")
    p.add_argument("--report", type=Path, metavar="RESULTS.json",
                   help="print the report (and plots) of saved results instead of running")
    p.add_argument("--workdir", type=Path, help="keep working files here (default: a temporary folder, removed)")
    return p


def _modules() -> dict[str, Any]:
    from benchmarks import e2e, load, login_cpu, overhead, scale, throughput

    return {"overhead": overhead, "throughput": throughput, "login": login_cpu, "e2e": e2e, "scale": scale,
            "load": load}


def report_machine(data: dict[str, Any], out: Callable[[str], None]) -> None:
    m = data["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
    tools = ", ".join(f"{k} {v}" for k, v in m["tools"].items() if v) or "none"
    out(f"fcplus_wsgi benchmarks, mode {data['mode']}, {data['started']}")
    out(f"machine: {m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), {m['python']}, "
        f"{m['platform']}, SQLite {m['sqlite']}")
    out(f"libraries: {libs}")
    out(f"tools: {tools}")
    start = " ".join(f"{v:.2f}" for v in m["load_average_start"])
    end = " ".join(f"{v:.2f}" for v in data.get("load_average_end", ()))
    out(f"load average at start {start}" + (f", at end {end}" if end else "") +
        " (other processes share these cores; baselines are measured in turn with what they are compared to)")


def report_summary(data: dict[str, Any], out: Callable[[str], None]) -> None:
    modules = _modules()
    out("")
    out("Summary (targets of issue 7):")
    for section in SECTIONS:
        if section in data["results"]:
            for line in modules[section].summary(data["results"][section]):
                out(f"   {line}")


def report_all(data: dict[str, Any], out: Callable[[str], None]) -> None:
    modules = _modules()
    report_machine(data, out)
    for section in SECTIONS:
        if section in data["results"]:
            out("")
            modules[section].report(data["results"][section], out)
            if section in data.get("elapsed_s", {}):
                out(f"   ({data['elapsed_s'][section]:.0f} s)")
    report_summary(data, out)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = print

    if args.report:
        saved: dict[str, Any] = json.loads(args.report.read_text())
        report_all(saved, out)
        _plots(args, saved, out)
        return 0

    unknown = [s for s in args.only if s not in SECTIONS]
    if unknown:
        parser().error(f"unknown section(s): {', '.join(unknown)}")
    from benchmarks.common import machine, open_redis_store, real_session_record, redis_server, write_keys_file

    mode = "quick" if args.quick else "full" if args.full else "default"
    params = dict(MODES[mode])
    overrides = {"servers": args.servers, "duration": args.duration, "rounds": args.rounds,
                 "connections": args.connections, "repeats": args.repeats, "sizes": args.sizes,
                 "e2e_clients": args.e2e_clients, "e2e_duration": args.e2e_duration,
                 "target": args.batch_ms / 1000 if args.batch_ms else None}
    params.update({k: v for k, v in overrides.items() if v is not None})
    stores = args.stores or ["memory", "sqlite", "redis"]
    if args.stores:
        params["throughput_stores"] = [s for s in stores if s in ("memory", "sqlite", "redis")]
    data: dict[str, Any] = {"mode": mode, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
                            "params": {**params, "stores": stores, "only": args.only}, "results": {},
                            "elapsed_s": {}}
    report_machine(data, out)
    sys.stdout.flush()

    with ExitStack() as stack:
        if args.workdir:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(tempfile.mkdtemp(prefix="fcplus-bench-"))
            stack.callback(shutil.rmtree, workdir, True)
        keys_file = write_keys_file(workdir)
        record = real_session_record(keys_file)
        ctx = Context(mode=mode, workdir=workdir, keys_file=keys_file, record=record, stores=stores,
                      scale_stores=[s for s in stores if s in ("sqlite", "redis")], profile_always=args.profile,
                      results=data["results"], **params)
        needs_redis = "redis" in stores and any(s in args.only for s in ("overhead", "throughput", "scale"))
        if needs_redis:
            ctx.redis = stack.enter_context(redis_server(workdir / "redis"))
            ctx.redis_store, ctx.redis_note = open_redis_store(ctx.redis)
            if ctx.redis_store is not None:
                stack.callback(ctx.redis_store.close)
        modules = _modules()
        for section in SECTIONS:
            if section not in args.only:
                continue
            started = time.perf_counter()
            data["results"][section] = modules[section].run(ctx)
            data["elapsed_s"][section] = time.perf_counter() - started
            out("")
            modules[section].report(data["results"][section], out)
            out(f"   ({data['elapsed_s'][section]:.0f} s)")
            sys.stdout.flush()
    data["load_average_end"] = os.getloadavg()
    report_summary(data, out)
    out("")
    out("load average at end " + " ".join(f"{v:.2f}" for v in data["load_average_end"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1, default=str))
        out(f"results written to {args.json}")
    _plots(args, data, out)
    return 0


def _plots(args: argparse.Namespace, data: dict[str, Any], out: Callable[[str], None]) -> None:
    if not args.plots:
        return
    from benchmarks import plots

    if not plots.available():
        out("plots skipped: matplotlib is not installed (pip install -e .[bench])")
        return
    for path in plots.write_plots(data["results"], args.plots):
        out(f"plot written to {path}")
