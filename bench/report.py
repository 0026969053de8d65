"""results.md and the chart, from the plain data the bench phases return."""

from __future__ import annotations

import statistics
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


def warm_lines(results: dict[str, Any]) -> list[str]:
    warm = results["warm"]
    lines = [
        "## 1. Warm latency: the handler against the floor",
        "",
        f"{warm['iterations']} timed rounds after {warm['warmup']} warm-up rounds; every round "
        "times each route once through the real handler (`lambda_handler(event, context)` with "
        "an event from `events/`, Powertools resolver, logger, metrics) and once "
        "through the floor (`bench/floor.py`: the same AWS calls and crypto primitives, made "
        "directly), in alternating order; the keyed payment is then sent again as is (the "
        "replay row: a client whose answer was lost). AWS is moto in-process (`mock_aws`), "
        "set up as `tests/integration/conftest.py` does. Each side pays tokens the *other* "
        "side issued, which proves the floor does the same work. Tracing is disabled (no "
        "X-Ray daemon).",
        "",
        "| route | handler median ms | handler p99 ms | floor median ms | floor p99 ms | "
        "handler / floor median | p99 ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in warm_rows(warm):
        lines.append(
            f"| {row['route']} | {_ms(row['handler']['median_ms'])} | "
            f"{_ms(row['handler']['p99_ms'])} | {_ms(row['floor']['median_ms'])} | "
            f"{_ms(row['floor']['p99_ms'])} | **{row['ratio']:.2f}** | {row['ratio_p99']:.2f} |"
        )
    lines += [
        "",
        "Where the time goes (medians, ms): inside botocore API calls (serialising, signing, "
        "moto's emulation) and the rest (parsing, checks, crypto, logging, metrics, framework). "
        "The last column is what the handler spends outside AWS calls beyond the floor.",
        "",
        "| route | handler: AWS calls | handler: rest | floor: AWS calls | floor: rest | "
        "handler rest - floor rest |",
        "|---|---|---|---|---|---|",
    ]
    for route in ROUTES:
        handler, floor = warm["series"][route], warm["series"][f"floor {route}"]
        lines.append(
            f"| {route} | {handler['aws']['median_ms']:.2f} | {handler['rest']['median_ms']:.2f} | "
            f"{floor['aws']['median_ms']:.2f} | {floor['rest']['median_ms']:.2f} | "
            f"{handler['rest']['median_ms'] - floor['rest']['median_ms']:.2f} |"
        )
    lines += [
        "",
        "Most of every figure is moto: serialising, signing (SigV4) and emulating each AWS call "
        "in-process costs about 1 ms (DynamoDB `TransactWriteItems` more, since moto deep-copies "
        "the tables it touches; the bench empties the tables between rounds so that cost stays "
        "flat). In AWS each call is a network round trip of several ms, so in production the "
        "handler / floor ratio is closer to 1 than here; what the ratio bounds is the "
        "framework's own time.",
        "",
    ]
    return lines


def tutorial_lines(results: dict[str, Any]) -> list[str]:
    series = results["warm"]["series"]
    pairs = [(ISSUE, TUTORIAL_ISSUE), (PAY, TUTORIAL_PAY), (PAY_NO_KEY, TUTORIAL_PAY)]
    lines = [
        "## 2. Against the tutorial baseline",
        "",
        "`bench/baseline_tutorial.py` is the tutorial this project started from, made runnable "
        "with the fewest changes (base64 text for `meta_data`, parameters for the key and files): "
        "RS256 with an RSA-2048 key read from `private.pem` and parsed on every token, KMS "
        "`Encrypt` of the whole card JSON, and on the server `jwt.decode` (PEM parsed every "
        "call) plus KMS `Decrypt`. It runs in the same rounds, on the same moto.",
        "",
        "| ours | median ms | p99 ms | tutorial | median ms | p99 ms | ours / tutorial (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for ours, theirs in pairs:
        a, b = series[ours]["summary"], series[theirs]["summary"]
        lines.append(
            f"| {ours} | {_ms(a['median_ms'])} | {_ms(a['p99_ms'])} | {theirs} | "
            f"{_ms(b['median_ms'])} | {_ms(b['p99_ms'])} | "
            f"**{a['median_ms'] / b['median_ms']:.2f}** |"
        )
    lines += [
        "",
        "Issuing is faster than the tutorial although it does more (card validation, a DynamoDB "
        "record, a per-token data key): the tutorial's cost is reading and parsing an RSA "
        "private key on every call (with its consistency check) and an RSA signature; ours "
        "keeps the parsed ES256 key for the life of the container. Paying costs more than "
        "the tutorial's `process_jwt` because it does what the tutorial does not: single use "
        "(a conditional claim, in one transaction with the `Idempotency-Key` record when there "
        "is one), a charge through the processor (the sandbox ledger's `PutItem`), and the "
        "payment record written with the token's tombstone, data key destroyed (one "
        "transaction). Each is a call the tutorial skips, and each closes one of its holes "
        "(replay, CVV kept after authorization, double charge on retry).",
        "",
    ]
    return lines


def cold_lines(results: dict[str, Any]) -> list[str]:
    cold = results["cold"]
    lines = [
        "## 3. Cold start",
        "",
        f"Each sample is a fresh `python -I -S` process (`bench/cold_child.py`) that imports "
        f"the handler from its function folder with the layer's package and dependencies on "
        f"`sys.path` (dependencies: {cold['dependencies']}; nothing from the dev virtualenv), "
        f"and serves its first request; the floor's process imports only what `bench/floor.py` "
        f"needs (boto3, cryptography) and makes the same first calls, Secrets Manager included. "
        f"AWS is a moto server on loopback. {cold['runs']} samples per cell, all kinds "
        "interleaved; the time is measured inside the process from its first line to the "
        "response (interpreter start-up is the same for both sides and is in the wall column).",
        "",
        "- **as built**: what a plain `sam build` produces. It unpacks wheels without bytecode "
        "(`.aws-sam/build/CardTokensLayer` has no `.pyc`) and `/opt` is read-only, so every "
        "cold start would compile every imported module of the layer from source.",
        "- **precompiled**: what `make build` ships: the same files, compiled by "
        "`compileall --invalidation-mode unchecked-hash` right after `sam build` (item 1 below).",
        "",
        "| variant | function | handler import ms | handler first request ms | handler total ms | "
        "floor import ms | floor first request ms | floor total ms | handler / floor | "
        "wall ms handler / floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in cold_rows(cold):
        h, f = row["handler"], row["floor"]
        lines.append(
            f"| {row['variant'].replace('_', ' ')} | {COLD_LABELS[row['route']]} | "
            f"{h['import_ms']:.0f} | {h['first_ms']:.0f} | {h['total_ms']:.0f} | "
            f"{f['import_ms']:.0f} | {f['first_ms']:.0f} | {f['total_ms']:.0f} | "
            f"**{row['ratio']:.2f}** | {h['wall_ms']:.0f} / {f['wall_ms']:.0f} |"
        )
    lines += [
        "",
        "Where the import time goes as built: one `-X importtime` run each, self time of the "
        "imported modules summed by top-level package (ms; the profiler inflates them, so "
        "compare them with each other only):",
        "",
    ]
    profiles = cold["import_profiles"]
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
    steps = cold["import_steps"]
    variants = list(steps)
    lines += [
        "",
        "What each part of the handler's imports adds, in a fresh process that first imports "
        "what the floor imports, then each step on top of the previous ones (median ms):",
        "",
        "| step | " + " | ".join(v.replace("_", " ") for v in variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    for label in steps[variants[0]]:
        lines.append(
            f"| {label} | " + " | ".join(f"{steps[v][label]:.0f}" for v in variants) + " |"
        )
    handler_extra = {
        v: sum(ms for label, ms in steps[v].items() if not label.startswith("floor"))
        for v in variants
    }
    lines.append(
        "| all but the floor's imports | "
        + " | ".join(f"{handler_extra[v]:.0f}" for v in variants)
        + " |"
    )
    return [*lines, ""]


def requests_lines(results: dict[str, Any]) -> list[str]:
    warm = results["warm"]
    shapes = warm["requests"]
    lines = [
        "## 4. AWS requests per warm call",
        "",
        "Counted with botocore `before-parameter-build` hooks registered on the layer's clients "
        "(`card_tokens.aws.kms_client()` etc., built once per container), on boto3's default "
        "session, on the floor's and the tutorial's clients; a second, independent tally hooks "
        "every botocore session created during the run (through botocore's built-in handlers, "
        "as moto does), so a client the first tally missed would show as a difference. Each "
        "cell is the call pattern of every timed call (the count of calls that made it). The "
        "targets count the service's own calls: the processor's charge is listed apart. Here "
        "the processor is the sandbox, whose ledger is a DynamoDB table "
        "(`SANDBOX_LEDGER_TABLE_NAME`): its conditional `PutItem` stands in for the network "
        "request to a real processor, which every payment makes whatever the service does.",
        "",
        "Same requests: once per route, untimed, every DynamoDB request of each side is recorded "
        "without its values (operation, table, expressions, attribute names and types, "
        "ReturnValues settings, transaction items) and the floor's must equal the handler's; "
        "`tests/integration/test_bench_smoke.py` fails otherwise.",
        "",
        "| route | target: service calls | handler: service calls | floor: service calls | "
        "handler: processor | floor: processor | same requests | both tallies agree |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for route in ROUTES:
        handler = warm["series"][route]
        floor = warm["series"][f"floor {route}"]
        agree = (
            handler["calls"] == handler["calls_everywhere"]
            and handler["processor_calls"] == handler["processor_calls_everywhere"]
        )
        same = route in shapes and shapes[route]["handler"] == shapes[route]["floor"]
        before = f" (was {CALLS_BEFORE[route]})" if route in CALLS_BEFORE else ""
        lines.append(
            f"| {route} | ≤ {MAX_CALLS[route]}{before} | {_patterns(handler['calls'])} | "
            f"{_patterns(floor['calls'])} | {_patterns(handler['processor_calls'])} | "
            f"{_patterns(floor['processor_calls'])} | {'yes' if same else '**no**'} | "
            f"{'yes' if agree else '**no**'} |"
        )
    for name in (TUTORIAL_ISSUE, TUTORIAL_PAY):
        lines.append(
            f"| {name} | — | {_patterns(warm['series'][name]['calls'])} | — | — | — | — | — |"
        )
    lines += [
        "",
        "Cold cache, for contrast (not timed): the first call of each function in a fresh "
        "container, and the first call after the secret cache expired "
        "(`KEYS.reset()`, as after `SECRET_CACHE_SECONDS`):",
        "",
    ]
    for label, calls in (
        *((f"first {route}", c) for route, c in warm["first_call"].items()),
        *(
            (f"{route} after the cache expired", c)
            for route, c in warm["after_cache_expiry"].items()
        ),
    ):
        processor = "" if calls["processor"] == "none" else f"; processor: {calls['processor']}"
        lines.append(f"- {label}: {calls['service']}{processor}")
    lines += [
        "",
        "**Issuing** makes 2 calls: `GenerateDataKey` (a fresh data key per token: it is what "
        "lets a payment destroy one token's key) and `PutItem` (the token record holding that "
        "encrypted key). The signing key comes from the Powertools cache: no Secrets Manager "
        "call while it is warm.",
        "",
        "**Paying: at most 3 calls of the service without `Idempotency-Key`, 4 with it** (6 and "
        "4 before this design), plus the processor's charge. Without a key:",
        "1. `UpdateItem` on the token record: the conditional claim (single use) *before* the "
        "data key is decrypted. It stores what the request asks (fingerprint, amount, currency, "
        "reference) with a lease, and returns the encrypted data key (`ReturnValues=ALL_NEW`).",
        "2. KMS `Decrypt` of the data key, with the encryption context.",
        "3. `TransactWriteItems`: the payment record and the token's tombstone (data key "
        "deleted, PCI DSS 3.3.1) in one atomic write, after the processor's charge (keyed on "
        "the token's jti, so no attempt can charge twice).",
        "",
        "With a key:",
        "1. `TransactWriteItems`: the key's record (in progress, bound to the request's "
        "fingerprint) and the claim, together: neither is ever held without the other.",
        "2. `GetItem` (consistent) of the token record: a transaction returns no item, and the "
        "claim's encrypted data key is needed.",
        "3. KMS `Decrypt`.",
        "4. `TransactWriteItems`: payment record, tombstone and the key's stored answer, "
        "atomically; again after the processor's charge.",
        "",
        "**A replay** (same key and body, its first answer lost) is 1 call: the claim's "
        "transaction fails its condition on the key record, which comes back with the failure "
        "(`ReturnValuesOnConditionCheckFailure`) holding the stored answer; no KMS call, no "
        "charge.",
        "",
        "**Why Powertools' idempotency utility was replaced.** It kept its own record around the "
        "handler, a conditional `PutItem` before and an `UpdateItem` with the response after: 2 "
        "round trips per keyed payment beyond the payment's own, so a keyed payment made 6 "
        "calls (now 4) and an unkeyed one 4 (now 3: the pending payment record written before "
        "the charge is gone too; the claim holds what it held, the processor's ledger records "
        "the charge, and the reconciler settles a charge whose request died before recording "
        "it). Above all, its record could not take part in the claim's transaction or in the "
        "one that records the payment: a payment could commit while the utility's record did "
        "not, and a retry whose first answer was lost then found the token spent and no stored "
        "answer, and got 409 instead of its payment. The key's record now shares both "
        "transactions, so a retry with the same key finds either its answer or its own claim.",
        "",
        "Verification costs no call: the public keys come from the cache. "
        "`GET /payments/{payment_id}` is one consistent `GetItem`.",
        "",
    ]
    return lines


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
        "Signing happens on every POST /tokens, verification on every POST /payments. ES256 "
        "signs an order of magnitude faster, makes shorter tokens and rotates in milliseconds; "
        "RS256 verifies somewhat faster, which does not make up for its signing cost on the "
        "issuing path. Hence ES256 as the default.",
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

    # Warm latency per route.
    ax = axes[0][0]
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

    # Against the tutorial.
    ax = axes[0][1]
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

    # Cold start.
    ax = axes[0][2]
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

    # AWS calls per warm call.
    ax = axes[1][0]
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

    # Package size.
    ax = axes[1][1]
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

    # ES256 against RS256.
    ax = axes[1][2]
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

    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
