"""`make bench`: every figure of issue 7 in one run, written to bench/results.md and a chart.

    .venv/bin/python -m bench.run              # the full run (a few minutes)
    .venv/bin/python -m bench.run --quick --out /tmp/b   # a smoke run (seconds), same figures

Order: `sam build` (package size) first, then the cold starts (child processes), then the warm
rounds and the signature costs in this process, so that no phase competes with another for
the two cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


_STARTED = time.perf_counter()


def _progress(message: str) -> None:
    print(
        f"bench [{time.perf_counter() - _STARTED:5.1f} s]: {message}", file=sys.stderr, flush=True
    )


def _git(*args: str) -> str:
    done = subprocess.run(  # noqa: S603 - fixed git arguments
        ["git", *args],  # noqa: S607 - git from PATH, as make does
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def _meta(argv: list[str], seconds: float) -> dict[str, Any]:
    command = "make bench" if argv == [] else "python -m bench.run " + shlex.join(argv)
    if os.environ.get("MAKELEVEL") and argv == []:
        command = "make bench (.venv/bin/python -m bench.run)"
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        "seconds": seconds,
    }


def _cold(runs: int, deps: str, parallel: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="card-tokens-bench-") as scratch:
        out = Path(scratch) / "cold.json"
        done = subprocess.run(  # noqa: S603 - our interpreter, our module
            [
                sys.executable,
                "-m",
                "bench.cold",
                *("--runs", str(runs), "--deps", deps, "--parallel", str(parallel)),
                *("--out", str(out)),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bench.cold failed: {done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return result


_XRAY_STEP = "aws_xray_sdk.core (Tracer's provider)"
_LAYER_STEP = "card_tokens (the layer's own modules)"


def gap_figures(results: dict[str, Any]) -> dict[str, str]:
    """This run's numbers that section 7 (the "gaps" part of report.md.tmpl) quotes, formatted."""
    from bench.report import COLD_TARGET, cold_rows
    from bench.warm import ISSUE, ROUTES

    rows = {(r["variant"], r["route"]): r for r in cold_rows(results["cold"])}
    built, pre = rows[("as_built", "issue")], rows[("precompiled", "issue")]
    built_pay, pre_pay = rows[("as_built", "pay")], rows[("precompiled", "pay")]
    steps = results["cold"]["import_steps"]

    def step(label: str) -> str:
        built_ms, pre_ms = steps["as_built"][label], steps["precompiled"][label]
        return f"{built_ms:.0f} ms as built, {pre_ms:.0f} ms with bytecode"

    series = results["warm"]["series"]

    def median(name: str, part: str) -> float:
        value: float = series[name][part]["median_ms"]
        return value

    extra = {route: median(route, "rest") - median(f"floor {route}", "rest") for route in ROUTES}
    issue_ms, issue_pre_ms = built["handler"]["total_ms"], pre["handler"]["total_ms"]
    return {
        "issue_built_ms": f"{issue_ms:.0f}",
        "issue_precompiled_ms": f"{issue_pre_ms:.0f}",
        "issue_bytecode_gain_ms": f"{issue_pre_ms - issue_ms:+.0f}",
        "pay_built_ms": f"{built_pay['handler']['total_ms']:.0f}",
        "pay_precompiled_ms": f"{pre_pay['handler']['total_ms']:.0f}",
        "issue_built_ratio": f"{built['ratio']:.2f}",
        "issue_precompiled_ratio": f"{pre['ratio']:.2f}",
        "cold_target": f"{COLD_TARGET}",
        "xray_step": step(_XRAY_STEP),
        "event_handler_step": step("Powertools event_handler"),
        "layer_step": step(_LAYER_STEP),
        "pyjwt_step": step("PyJWT"),
        "warm_extra": ", ".join(f"{extra[route]:+.2f} ms on {route}" for route in ROUTES),
        "issue_warm_ratio": f"{median(ISSUE, 'summary') / median(f'floor {ISSUE}', 'summary'):.2f}",
    }


def proposals(results: dict[str, Any]) -> list[str]:
    """Gaps against the targets and what would close them, with this run's numbers."""
    from bench.report import part

    return [*part("gaps", **gap_figures(results)), ""]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=250, help="timed warm rounds")
    parser.add_argument("--warmup", type=int, default=20, help="untimed warm rounds first")
    parser.add_argument("--cold-runs", type=int, default=6, help="cold starts per kind and variant")
    parser.add_argument("--signing-iterations", type=int, default=300)
    parser.add_argument("--cold-deps", choices=("layer", "venv"), default="layer")
    parser.add_argument("--skip-sam-build", action="store_true", help="no package-size figures")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few iterations of everything, cold starts 3 at a time: for the smoke test only",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.warmup, args.cold_runs, args.signing_iterations = 5, 2, 1, 20
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    results: dict[str, Any] = {}
    if args.skip_sam_build:
        results["package"] = {"skipped": "not run (--skip-sam-build)"}
    else:
        _progress("sam build (package size)")
        from bench import package_size

        results["package"] = package_size.run()
    _progress("cold starts")
    results["cold"] = _cold(args.cold_runs, args.cold_deps, 3 if args.quick else 1)
    _progress("warm rounds")
    from bench import signing, warm

    results["warm"] = warm.run(args.iterations, args.warmup, _progress)
    _progress("ES256 against RS256")
    results["signing"] = signing.run(args.signing_iterations, 1 if args.quick else 3)
    results["meta"] = _meta(argv, time.perf_counter() - started)
    _progress("writing results")
    from bench import report

    (args.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    report.write(results, args.out, proposals(results))
    _progress(f"done in {results['meta']['seconds']:.0f} s: {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
