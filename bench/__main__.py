"""`python -m bench [names...]`: run the named benchmarks (default: all) and print their
tables, ratios and goals."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

import bench
from bench.harness import BenchError, BenchOptions, NeedsReal, Report, ensure_wrk, report


def available() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith("bench_")
    )


def parse(argv: Sequence[str]) -> tuple[list[str], BenchOptions]:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (of: {', '.join(names)})")
    parser.add_argument(
        "--real",
        action="store_true",
        help="serve from PostgreSQL + Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up first")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; the best of each counts"
    )
    parser.add_argument(
        "--tree",
        type=Path,
        help="also serve this worktree of suishen as 'before' in the same run "
        "(e.g. `git worktree add /work/before HEAD && make -C /work/before install`)",
    )
    parser.add_argument(
        "--server", choices=["uvicorn", "granian"], default="uvicorn", help="suishen serve --server"
    )
    parser.add_argument("--workers", type=int, default=1, help="suishen serve --workers")
    args = parser.parse_args(argv)
    if args.tree is not None and not (args.tree / ".venv" / "bin" / "python").exists():
        parser.error(f"--tree {args.tree}: no .venv there (run `make install` in it)")
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names)}")
    opts = BenchOptions(
        real=args.real,
        duration_s=args.duration,
        warmup_s=args.warmup,
        connections=args.connections,
        threads=args.threads,
        rounds=args.rounds,
        database_url=os.environ.get("BENCH_DATABASE_URL", BenchOptions.database_url),
        redis_url=os.environ.get("BENCH_REDIS_URL", BenchOptions.redis_url),
        tree=args.tree.resolve() if args.tree is not None else None,
        server=args.server,
        workers=args.workers,
    )
    return args.names or names, opts


def main(argv: Sequence[str] | None = None) -> int:
    names, opts = parse(sys.argv[1:] if argv is None else argv)
    try:
        ensure_wrk()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(
        f"# backend: {opts.backend_name}; wrk -t{opts.threads} -c{opts.connections} "
        f"-d{opts.duration_s:g}s (after {opts.warmup_s:g}s warm-up), best of "
        f"{opts.rounds} interleaved rounds; "
        "server on core 0, wrk on core 1",
        flush=True,
    )
    reports: list[Report] = []
    failed: list[str] = []
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        try:
            rep: Report = module.run(opts)
        except NeedsReal as exc:
            print(f"== {exc}\n", flush=True)
            continue
        except BenchError as exc:
            print(f"== {name}: FAILED\n{exc}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        reports.append(rep)
        print(report(rep) + "\n", flush=True)
    if len(reports) > 1:
        print("# summary")
        for rep in reports:
            if rep.ratio is not None:
                goal = f" (goal {rep.goal_ratio:.2f})" if rep.goal_ratio is not None else ""
                print(f"{rep.title}: ratio {rep.ratio:.3f}{goal}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
