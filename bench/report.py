"""results.md and the chart, from the plain data the bench phases return."""

from __future__ import annotations

import functools
import re
import statistics
import string
from pathlib import Path
from typing import Any

from bench.warm import (
    GET,
    ISSUE,
    PAY,
    PAY_NO_KEY,
    REPLAY,
    ROUTES,
    TUTORIAL_ISSUE,
    TUTORIAL_PAY,
)

WARM_TARGET = 1.2
COLD_TARGET = 1.3
# The most AWS calls of the service itself per warm request (the processor's call is apart):
# the issue's targets for paying, and what the same routes made with Powertools' idempotency.
MAX_CALLS = {ISSUE: 2, PAY: 4, PAY_NO_KEY: 3, REPLAY: 1, GET: 1}
CALLS_BEFORE = {PAY: 6, PAY_NO_KEY: 4}
CHART = "results.png"
COLD_LABELS = {
    "issue": "IssueTokenFunction (POST /tokens)",
    "pay": "ProcessPaymentFunction (POST /payments)",
}


# The report's fixed prose, in Markdown, by part (see its first lines).
PROSE = Path(__file__).with_name("report.md.tmpl")
_PART_MARKER = re.compile(r"^<!-- part: (\S+) -->$", re.MULTILINE)


@functools.cache
def _parts() -> dict[str, str]:
    chunks = _PART_MARKER.split(PROSE.read_text(encoding="utf-8"))
    return {name: text.strip("\n") for name, text in zip(chunks[1::2], chunks[2::2], strict=True)}


def part(name: str, **figures: object) -> list[str]:
    """One part of the prose, its $fields filled in; one list item per line, as the report's."""
    # substitute, not safe_substitute: a field without its figure fails the run, not the report.
    return string.Template(_parts()[name]).substitute(figures).split("\n")


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _total_calls(pattern: str) -> int:
    if pattern == "none":
        return 0
    return sum(int(part.rsplit(" x", 1)[1]) for part in pattern.split(", "))


def warm_rows(warm: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for route in ROUTES:
        handler = warm["series"][route]["summary"]
        floor = warm["series"][f"floor {route}"]["summary"]
        rows.append(
            {
                "route": route,
                "handler": handler,
                "floor": floor,
                "ratio": handler["median_ms"] / floor["median_ms"],
                "ratio_p99": handler["p99_ms"] / floor["p99_ms"],
            }
        )
    return rows


def cold_rows(cold: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for variant, kinds in cold["samples"].items():
        for route in ("issue", "pay"):
            row: dict[str, Any] = {"variant": variant, "route": route}
            for side in ("handler", "floor"):
                samples = kinds[f"{side}:{route}"]
                row[side] = {
                    "import_ms": statistics.median(s["import_s"] for s in samples) * 1000,
                    "first_ms": statistics.median(s["first_request_s"] for s in samples) * 1000,
                    "total_ms": statistics.median(
                        s["import_s"] + s["first_request_s"] for s in samples
                    )
                    * 1000,
                    "p99_total_ms": max(s["import_s"] + s["first_request_s"] for s in samples)
                    * 1000,
                    "wall_ms": statistics.median(s["wall_s"] for s in samples) * 1000,
                    "modules": samples[0]["modules"],
                    "n": len(samples),
                }
            row["ratio"] = row["handler"]["total_ms"] / row["floor"]["total_ms"]
            rows.append(row)
    return rows


def _header(meta: dict[str, Any]) -> list[str]:
    return [
        "# Benchmark results",
        "",
        f"Produced by `{meta['command']}` on {meta['date']}, at commit `{meta['commit']}`"
        f"{' (with uncommitted changes)' if meta['dirty'] else ''}.",
        f"Machine: {meta['machine']}. Every figure below comes from this one run, on this one "
        f"machine; the bench took {meta['seconds']:.0f} s. "
        "The machine is shared and noisy: read medians and p99s, and above all the ratios, "
        "which compare things measured interleaved in the same minutes.",
        "",
        f"![handler vs floor, cold starts, AWS calls, package size, ES256 vs RS256]({CHART})",
        "",
    ]


def summary_lines(results: dict[str, Any]) -> list[str]:
    warm = results["warm"]
    lines = ["## Targets", "", "| what | target | measured | |", "|---|---|---|---|"]
    for row in warm_rows(warm):
        if row["route"] in (ISSUE, PAY):
            lines.append(
                f"| warm {row['route']}: handler / floor (median) | ≤ {WARM_TARGET} | "
                f"{row['ratio']:.3f} | {_met(row['ratio'] <= WARM_TARGET)} |"
            )
    for row in cold_rows(results["cold"]):
        if row["variant"] == "precompiled":
            lines.append(
                f"| cold start {COLD_LABELS[row['route']]}: handler / floor (median), "
                f"as `make build` ships it (with bytecode) | ≤ {COLD_TARGET} | "
                f"{row['ratio']:.3f} | "
                f"{_met(row['ratio'] <= COLD_TARGET)} |"
            )
    for route, most in MAX_CALLS.items():
        calls = _total_calls(_only(warm["series"][route]["calls"]))
        before = f" (was {CALLS_BEFORE[route]})" if route in CALLS_BEFORE else ""
        processor = _only(warm["series"][route]["processor_calls"])
        apart = f"; processor apart: {_total_calls(processor)}" if processor != "none" else ""
        lines.append(
            f"| AWS calls per warm {route}, the service's own (section 4) | ≤ {most}{before} | "
            f"{calls}{apart} | {_met(calls <= most)} |"
        )
    secrets_calls = sum(
        "secretsmanager" in pattern
        for route in ROUTES
        for pattern in warm["series"][route]["calls"]
    )
    lines.append(
        f"| Secrets Manager calls while the cache is warm | 0 | {secrets_calls} | "
        f"{_met(secrets_calls == 0)} |"
    )
    package = results["package"]
    if "skipped" in package:
        lines.append(f"| package size | within budget | skipped | {package['skipped'][:80]} |")
    else:
        within = all(a["within_budget"] for a in package["artifacts"].values())
        lines.append(f"| package size, unzipped | within budget | see below | {_met(within)} |")
    return [*lines, ""]


def _only(patterns: dict[str, int]) -> str:
    """The one call pattern every timed call made (several would be a finding in itself)."""
    return max(patterns, key=lambda pattern: _total_calls(pattern))


def _section(*blocks: list[str]) -> list[str]:
    """Blocks (a heading, a paragraph, a table), each followed by a blank line, as Markdown
    needs them."""
    return [line for block in blocks for line in (*block, "")]


def _row(*cells: object) -> str:
    """One row of a Markdown table."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


# A cell pair per side: the median, then the 99th percentile.
PERCENTILES = ("median_ms", "p99_ms")
# The service's own calls, then the processor's.
CALL_KINDS = ("calls", "processor_calls")
# A cold start's parts, in the report's column order.
COLD_PARTS = ("import_ms", "first_ms", "total_ms")


def _table(header: str, rows: list[str]) -> list[str]:
    """A Markdown table: its header row, the separator for as many columns, its rows."""
    return [header, "|" + "---|" * (header.count("|") - 1), *rows]


def warm_lines(results: dict[str, Any]) -> list[str]:
    warm = results["warm"]
    latency = [
        _row(
            row["route"],
            *(_ms(row[side][figure]) for side in ("handler", "floor") for figure in PERCENTILES),
            f"**{row['ratio']:.2f}**",
            f"{row['ratio_p99']:.2f}",
        )
        for row in warm_rows(warm)
    ]
    split = []
    for route in ROUTES:
        handler, floor = warm["series"][route], warm["series"][f"floor {route}"]
        medians = [side[part]["median_ms"] for side in (handler, floor) for part in ("aws", "rest")]
        split.append(_row(route, *(f"{ms:.2f}" for ms in (*medians, medians[1] - medians[3]))))
    return _section(
        ["## 1. Warm latency: the handler against the floor"],
        part("warm-intro", iterations=warm["iterations"], warmup=warm["warmup"]),
        _table(
            "| route | handler median ms | handler p99 ms | floor median ms | floor p99 ms | "
            "handler / floor median | p99 ratio |",
            latency,
        ),
        part("warm-split"),
        _table(
            "| route | handler: AWS calls | handler: rest | floor: AWS calls | floor: rest | "
            "handler rest - floor rest |",
            split,
        ),
        part("warm-moto"),
    )


def tutorial_lines(results: dict[str, Any]) -> list[str]:
    series = results["warm"]["series"]
    rows = []
    for ours, theirs in [(ISSUE, TUTORIAL_ISSUE), (PAY, TUTORIAL_PAY), (PAY_NO_KEY, TUTORIAL_PAY)]:
        a, b = series[ours]["summary"], series[theirs]["summary"]
        rows.append(
            _row(
                ours,
                *(_ms(a[figure]) for figure in PERCENTILES),
                theirs,
                *(_ms(b[figure]) for figure in PERCENTILES),
                f"**{a['median_ms'] / b['median_ms']:.2f}**",
            )
        )
    return _section(
        ["## 2. Against the tutorial baseline"],
        part("tutorial-intro"),
        _table(
            "| ours | median ms | p99 ms | tutorial | median ms | p99 ms | "
            "ours / tutorial (median) |",
            rows,
        ),
        part("tutorial-why"),
    )


def cold_lines(results: dict[str, Any]) -> list[str]:
    cold = results["cold"]
    rows = []
    for row in cold_rows(cold):
        h, f = row["handler"], row["floor"]
        rows.append(
            _row(
                row["variant"].replace("_", " "),
                COLD_LABELS[row["route"]],
                *(f"{side[part]:.0f}" for side in (h, f) for part in COLD_PARTS),
                f"**{row['ratio']:.2f}**",
                f"{h['wall_ms']:.0f} / {f['wall_ms']:.0f}",
            )
        )
    return _section(
        ["## 3. Cold start"],
        part("cold-intro", dependencies=cold["dependencies"], runs=cold["runs"]),
        part("cold-variants"),
        _table(
            "| variant | function | handler import ms | handler first request ms | "
            "handler total ms | floor import ms | floor first request ms | floor total ms | "
            "handler / floor | wall ms handler / floor |",
            rows,
        ),
        part("cold-profiles"),
        _import_profile_lines(cold["import_profiles"]),
        part("cold-steps"),
        _import_step_lines(cold["import_steps"]),
    )


def _import_profile_lines(profiles: dict[str, Any]) -> list[str]:
    """Per variant and kind: the import self time by top-level package, and the handler's
    packages the floor does not import."""
    lines = []
    for variant, kinds in profiles.items():
        floor_packages = kinds.get("floor:issue", {}).get("packages", {})
        for kind in ("handler:issue", "handler:pay", "floor:issue"):
            if kind not in kinds:
                continue
            packages = kinds[kind]["packages"]
            top = sorted(packages.items(), key=lambda item: -item[1])[:8]
            line = (
                f"- {variant.replace('_', ' ')}, {kind}: total {sum(packages.values()):.0f}; "
                + ", ".join(f"{name} {ms:.0f}" for name, ms in top)
            )
            if kind.startswith("handler"):
                extra = sorted(
                    ((n, ms) for n, ms in packages.items() if n not in floor_packages),
                    key=lambda item: -item[1],
                )[:6]
                line += "; not imported by the floor: " + ", ".join(
                    f"{name} {ms:.0f}" for name, ms in extra
                )
            lines.append(line)
    return lines


def _import_step_lines(steps: dict[str, dict[str, float]]) -> list[str]:
    """The marginal import costs as a table: one row per step, one column per variant; then
    the sum of all steps but the floor's own imports."""
    variants = list(steps)
    handler_extra = {
        v: sum(ms for label, ms in steps[v].items() if not label.startswith("floor"))
        for v in variants
    }
    rows = [
        f"| {label} | " + " | ".join(f"{steps[v][label]:.0f}" for v in variants) + " |"
        for label in steps[variants[0]]
    ]
    rows.append(
        "| all but the floor's imports | "
        + " | ".join(f"{handler_extra[v]:.0f}" for v in variants)
        + " |"
    )
    return _table("| step | " + " | ".join(v.replace("_", " ") for v in variants) + " |", rows)


def requests_lines(results: dict[str, Any]) -> list[str]:
    warm = results["warm"]
    return _section(
        ["## 4. AWS requests per warm call"],
        part("requests-intro"),
        _table(
            "| route | target: service calls | handler: service calls | floor: service calls | "
            "handler: processor | floor: processor | same requests | both tallies agree |",
            _request_rows(warm),
        ),
        part("requests-cold-cache", merchant_cache_seconds=warm["merchant_cache_seconds"]),
        [
            f"- {label}: {calls['service']}"
            + ("" if calls["processor"] == "none" else f"; processor: {calls['processor']}")
            + f"; of which on the merchant registry: {calls['registry']}"
            for label, calls in (
                *((f"first {route}", c) for route, c in warm["first_call"].items()),
                *(
                    (f"{route} after the cache expired", c)
                    for route, c in warm["after_cache_expiry"].items()
                ),
            )
        ],
        part("requests-explained"),
    )


def _request_rows(warm: dict[str, Any]) -> list[str]:
    """Per route: the target, each side's calls, whether both sides' requests and both
    tallies agree; then the tutorial's calls."""
    shapes = warm["requests"]
    rows = []
    for route in ROUTES:
        handler = warm["series"][route]
        floor = warm["series"][f"floor {route}"]
        agree = (
            handler["calls"] == handler["calls_everywhere"]
            and handler["processor_calls"] == handler["processor_calls_everywhere"]
        )
        same = route in shapes and shapes[route]["handler"] == shapes[route]["floor"]
        before = f" (was {CALLS_BEFORE[route]})" if route in CALLS_BEFORE else ""
        rows.append(
            _row(
                route,
                f"≤ {MAX_CALLS[route]}{before}",
                *(_patterns(side[kind]) for kind in CALL_KINDS for side in (handler, floor)),
                *("yes" if ok else "**no**" for ok in (same, agree)),
            )
        )
    for name in (TUTORIAL_ISSUE, TUTORIAL_PAY):
        rows.append(_row(name, "—", _patterns(warm["series"][name]["calls"]), *["—"] * 5))
    return rows


def _patterns(patterns: dict[str, int]) -> str:
    return "; ".join(
        f"{pattern} (in {count} of {total})"
        for pattern, count in patterns.items()
        for total in [sum(patterns.values())]
    )


def package_lines(results: dict[str, Any]) -> list[str]:
    package = results["package"]
    lines = ["## 5. Package size after `sam build`", ""]
    if "skipped" in package:
        return [*lines, f"Skipped: {package['skipped']}", ""]
    lines += [
        f"`{package['command']}`, {package['build_seconds']:.0f} s. Sizes are the unzipped "
        "files of each build artifact. Lambda's limit is 250 MB unzipped for a function "
        "plus its layers; the budgets below are ours (bench/package_size.py).",
        "",
        "| artifact | unzipped | files | .pyc files | budget | | with bytecode (proposal 1) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, artifact in package["artifacts"].items():
        budget = artifact["budget_bytes"]
        lines.append(
            f"| {name} | {_size(artifact['bytes'])} | {artifact['files']} | "
            f"{artifact['bytecode_files']} | {_size(budget) if budget else '—'} | "
            f"{_met(artifact['within_budget'])} | {_size(artifact['bytes_with_bytecode'])} |"
        )
    for name, artifact in package["artifacts"].items():
        if artifact["largest"]:
            lines.append("")
            lines.append(
                f"Largest parts of {name}: "
                + ", ".join(f"{entry} {_size(size)}" for entry, size in artifact["largest"])
            )
    return [*lines, ""]


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / 1024 / 1024:.1f} MB"
    return f"{count / 1024:.1f} KB"


def signing_lines(results: dict[str, Any]) -> list[str]:
    signing = results["signing"]
    algorithms = signing["algorithms"]
    lines = [
        "## 6. ES256 against RS256",
        "",
        f"Through the layer (`card_tokens.tokens.sign_token` / `verify_token`, PyJWT plus the "
        "layer's own checks) and raw (`cryptography` only), P-256 against "
        f"RSA-{signing['rsa_bits']} (the layer's RSA size), µs:",
        "",
        "| | ES256 median | ES256 p99 | RS256 median | RS256 p99 | RS256 / ES256 |",
        "|---|---|---|---|---|---|",
    ]
    es, rs = algorithms["ES256"], algorithms["RS256"]
    for name in ("sign_token", "verify_token", "raw_sign", "raw_verify", "generate_key"):
        a, b = es[name], rs[name]
        scale, unit, digits = (1000, "", 0) if name != "generate_key" else (1, " (ms)", 2)
        lines.append(
            f"| {name}{unit} | {a['median_ms'] * scale:.{digits}f} | "
            f"{a['p99_ms'] * scale:.{digits}f} | {b['median_ms'] * scale:.{digits}f} | "
            f"{b['p99_ms'] * scale:.{digits}f} | {b['median_ms'] / a['median_ms']:.1f} |"
        )
    lines += [
        f"| token length (bytes) | {es['token_bytes']} | | {rs['token_bytes']} | | "
        f"{rs['token_bytes'] / es['token_bytes']:.2f} |",
        "",
        *part("signing-why"),
        "",
    ]
    return lines


def write(results: dict[str, Any], out: Path, proposals: list[str]) -> None:
    lines = [
        *_header(results["meta"]),
        *summary_lines(results),
        *warm_lines(results),
        *tutorial_lines(results),
        *cold_lines(results),
        *requests_lines(results),
        *package_lines(results),
        *signing_lines(results),
        *proposals,
    ]
    (out / "results.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    chart(results, out / CHART)


def _short(name: str) -> str:
    return (
        name.replace(" (no Idempotency-Key)", "\nno Idem-Key")
        .replace(" (replay: same Idempotency-Key and body)", "\nreplay")
        .replace("{payment_id}", "{id}")
        .replace("tutorial ", "tutorial\n")
    )


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(18, 10))
    figure.suptitle(f"card-tokens bench — {results['meta']['date']} — {results['meta']['commit']}")
    _warm_panel(axes[0][0], results)
    _tutorial_panel(axes[0][1], results)
    _cold_panel(axes[0][2], results)
    _calls_panel(axes[1][0], results)
    _package_panel(axes[1][1], results)
    _signing_panel(axes[1][2], results)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _warm_panel(ax: Any, results: dict[str, Any]) -> None:
    """Warm latency per route, handler beside floor."""
    rows = warm_rows(results["warm"])
    labels = [_short(r["route"]) for r in rows]
    x = range(len(rows))
    width = 0.38
    for offset, side, color in (
        (-width / 2, "handler", "tab:blue"),
        (width / 2, "floor", "tab:gray"),
    ):
        medians = [r[side]["median_ms"] for r in rows]
        p99s = [r[side]["p99_ms"] for r in rows]
        positions = [i + offset for i in x]
        ax.bar(positions, medians, width, label=f"{side} median", color=color)
        ax.scatter(positions, p99s, marker="_", s=300, color="black", zorder=3)
    for i, r in enumerate(rows):
        ax.annotate(
            f"x{r['ratio']:.2f}",
            (i, max(r["handler"]["p99_ms"], r["floor"]["p99_ms"])),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_xticks(list(x), labels, fontsize=7, rotation=25, ha="right")
    ax.set_ylabel("ms (bar: median, dash: p99)")
    ax.set_title(f"Warm latency, moto in-process (handler/floor target ≤ {WARM_TARGET})")
    ax.legend(fontsize=8)


def _tutorial_panel(ax: Any, results: dict[str, Any]) -> None:
    """Ours against the tutorial baseline."""
    series = results["warm"]["series"]
    names = [ISSUE, TUTORIAL_ISSUE, PAY, PAY_NO_KEY, TUTORIAL_PAY]
    colors = ["tab:blue", "tab:orange", "tab:blue", "tab:blue", "tab:orange"]
    medians = [series[n]["summary"]["median_ms"] for n in names]
    ax.bar(range(len(names)), medians, color=colors)
    ax.scatter(
        range(len(names)),
        [series[n]["summary"]["p99_ms"] for n in names],
        marker="_",
        s=300,
        color="black",
        zorder=3,
    )
    ax.set_xticks(
        range(len(names)),
        [_short(n) for n in names],
        fontsize=8,
    )
    ax.set_ylabel("ms (bar: median, dash: p99)")
    ax.set_title("Ours (blue) against the tutorial baseline (orange)")


def _cold_panel(ax: Any, results: dict[str, Any]) -> None:
    """Cold starts: import and first request, as built and with bytecode."""
    crow = cold_rows(results["cold"])
    labels = []
    position = 0.0
    ticks = []
    for row in crow:
        for side, color in (("handler", "tab:blue"), ("floor", "tab:gray")):
            data = row[side]
            ax.bar(position, data["import_ms"], 0.8, color=color)
            ax.bar(
                position, data["first_ms"], 0.8, bottom=data["import_ms"], color=color, alpha=0.5
            )
            ticks.append(position)
            variant = "built" if row["variant"] == "as_built" else "pyc"
            labels.append(f"{side}\n{row['route']}\n{variant}")
            position += 1
        ax.annotate(
            f"x{row['ratio']:.2f}",
            (position - 1.5, row["handler"]["total_ms"]),
            ha="center",
            va="bottom",
            fontsize=9,
        )
        position += 0.6
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_ylim(0, max(r["handler"]["total_ms"] for r in crow) * 1.15)
    ax.set_ylabel("ms (solid: import, light: first request)")
    ax.set_title(f"Cold start, medians (handler/floor target ≤ {COLD_TARGET})")


def _calls_panel(ax: Any, results: dict[str, Any]) -> None:
    """AWS calls per warm request, the processor's hatched on top."""
    series = results["warm"]["series"]
    operations: dict[str, list[int]] = {}
    routes = [*ROUTES, TUTORIAL_ISSUE, TUTORIAL_PAY]
    for index, route in enumerate(routes):
        for kind, prefix in (("calls", ""), ("processor_calls", "processor: ")):
            pattern = _only(series[route][kind])
            if pattern == "none":
                continue
            for part in pattern.split(", "):
                name, count = part.rsplit(" x", 1)
                operations.setdefault(prefix + name, [0] * len(routes))[index] = int(count)
    bottom = [0] * len(routes)
    # The service's own calls first, the processor's (hatched) on top.
    for name, counts in sorted(
        operations.items(), key=lambda item: (item[0].startswith("processor"), item[0])
    ):
        hatch = "//" if name.startswith("processor") else None
        ax.bar(range(len(routes)), counts, bottom=bottom, label=name, hatch=hatch)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_xticks(
        range(len(routes)),
        [_short(r) for r in routes],
        fontsize=7,
        rotation=25,
        ha="right",
    )
    ax.set_ylim(0, max(bottom) + 1)
    ax.set_ylabel("AWS API calls per request")
    ax.set_title("AWS calls per warm request (processor hatched)")
    ax.legend(fontsize=7)


def _package_panel(ax: Any, results: dict[str, Any]) -> None:
    """Package size after sam build, against each budget."""
    package = results["package"]
    if "skipped" in package:
        ax.text(
            0.5,
            0.5,
            "package size: skipped\n" + package["skipped"][:60],
            ha="center",
            va="center",
            wrap=True,
        )
        ax.set_axis_off()
    else:
        names = list(package["artifacts"])
        sizes = [package["artifacts"][n]["bytes"] / 1024 for n in names]
        budgets = [(package["artifacts"][n]["budget_bytes"] or 0) / 1024 for n in names]
        ax.barh(names, budgets, color="lightgray", label="budget")
        ax.barh(names, sizes, height=0.4, color="tab:green", label="unzipped size")
        ax.set_xscale("log")
        ax.set_xlabel("KB (log)")
        ax.set_title("Package size after sam build")
        ax.legend(fontsize=8)
        ax.tick_params(axis="y", labelsize=8)


def _signing_panel(ax: Any, results: dict[str, Any]) -> None:
    """ES256 against RS256, per operation."""
    algorithms = results["signing"]["algorithms"]
    operations_names = ["sign_token", "verify_token", "raw_sign", "raw_verify"]
    for offset, alg, color in ((-0.2, "ES256", "tab:blue"), (0.2, "RS256", "tab:red")):
        ax.bar(
            [i + offset for i in range(4)],
            [algorithms[alg][op]["median_ms"] * 1000 for op in operations_names],
            0.4,
            label=alg,
            color=color,
        )
    ax.set_xticks(range(4), operations_names)
    ax.set_yscale("log")
    ax.set_ylabel("µs, median (log)")
    ax.set_title(f"ES256 (P-256) vs RS256 (RSA-{results['signing']['rsa_bits']})")
    ax.legend()
