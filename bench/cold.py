"""Cold starts: fresh interpreters that import a handler (or the floor) and serve one request.

`python -m bench.cold --runs N --out FILE` starts moto's server in this process (the children
are separate processes, so they reach AWS over loopback HTTP, as a function reaches AWS over the
network), provisions the stack as `make run` does, signs a key in, mints tokens for the payment
children, then runs the children interleaved and writes their timings as JSON.

What the children see is what Lambda's python3.13 runtime sees: the function folder (the task
root), the layer's package (/opt/python) and its pinned dependencies installed from
layers/card_tokens/requirements.txt, nothing from the development virtualenv. Two variants:
- `as_built`: no bytecode for the function, the layer or its dependencies. `sam build` unpacks
  wheels without compiling them and /opt and /var/task are read-only in Lambda, so every cold
  start compiles every imported module of the layer from source (-B keeps it that way here);
  the standard library keeps its bytecode, as the runtime's does.
- `precompiled`: the same files with bytecode for everything imported (what shipping .pyc
  files in the layer would give; see the proposals in results.md).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYER_REQUIREMENTS = ROOT / "layers" / "card_tokens" / "requirements.txt"
STACK_NAME = "card-tokens-bench-cold"
FUNCTIONS = {"issue": "IssueTokenFunction", "pay": "ProcessPaymentFunction"}
FUNCTION_DIRS = {"issue": "issue_token", "pay": "process_payment"}
KINDS = [(side, route) for route in ("issue", "pay") for side in ("handler", "floor")]
VARIANTS = ("as_built", "precompiled")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def layer_dependencies(mode: str) -> tuple[Path, str]:
    """A folder with exactly the layer's pinned dependencies, no bytecode; and how it was made.

    Installed once per requirements file and interpreter into the system temp folder
    (pip --target --no-compile: the files sam build unpacks, for this machine's platform).
    """
    if mode == "venv":
        return _venv_site_packages(), "the development virtualenv (fallback)"
    digest = hashlib.sha256(
        LAYER_REQUIREMENTS.read_bytes() + sys.version.encode() + sys.platform.encode()
    ).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / "card-tokens-bench" / f"layer-deps-{digest}"
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(prefix="layer-deps-", dir=target.parent.parent))
        result = subprocess.run(  # noqa: S603 - our interpreter, our arguments
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--target",
                str(staging),
                "-r",
                str(LAYER_REQUIREMENTS),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            print(
                f"bench: pip --target failed, using the venv: {result.stderr[-500:]}",
                file=sys.stderr,
            )
            return _venv_site_packages(), "the development virtualenv (pip --target failed)"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(target)
        except OSError:  # another run made it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    _remove_bytecode(target)
    return target, "pip install --target --no-compile -r layers/card_tokens/requirements.txt"


def _venv_site_packages() -> Path:
    return Path(next(p for p in sys.path if p.endswith("site-packages")))


def _remove_bytecode(folder: Path) -> None:
    for cache in folder.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def source_copies(workdir: Path) -> dict[str, Path]:
    """The function folders, the layer package and the floor, copied without bytecode."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    roots = {}
    for route, folder in FUNCTION_DIRS.items():
        roots[f"task-{route}"] = workdir / "task" / folder
        shutil.copytree(ROOT / "functions" / folder, roots[f"task-{route}"], ignore=ignore)
    roots["opt"] = workdir / "opt"
    shutil.copytree(
        ROOT / "layers" / "card_tokens" / "card_tokens", roots["opt"] / "card_tokens", ignore=ignore
    )
    roots["floor"] = workdir / "floor"
    (roots["floor"] / "bench").mkdir(parents=True)
    shutil.copy(ROOT / "bench" / "__init__.py", roots["floor"] / "bench" / "__init__.py")
    shutil.copy(ROOT / "bench" / "floor.py", roots["floor"] / "bench" / "floor.py")
    return roots


def child_paths(side: str, route: str, roots: dict[str, Path], deps: Path) -> list[str]:
    if side == "handler":
        return [str(roots[f"task-{route}"]), str(roots["opt"]), str(deps)]
    return [str(roots["floor"]), str(deps)]


def interpreter_flags(variant: str, pycache: Path) -> list[str]:
    if variant == "as_built":
        return ["-I", "-S", "-B"]
    return ["-I", "-S", "-X", f"pycache_prefix={pycache}"]


def run_child(
    flags: list[str], spec: dict[str, Any], env: dict[str, str], extra: list[str] | None = None
) -> dict[str, Any]:
    command = [sys.executable, *flags, *(extra or []), str(ROOT / "bench" / "cold_child.py")]
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our interpreter, our script
        [*command, json.dumps(spec)], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"cold child {spec['side']} {spec['route']} failed ({done.returncode}): "
            f"{done.stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    expected = 201
    if result["status"] != expected:
        raise RuntimeError(f"cold child {spec['side']} {spec['route']} answered {result['status']}")
    result["wall_s"] = wall
    result["stderr"] = done.stderr
    return result


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


# Parts of the import worth naming: self times of every module under each prefix, summed (a
# module's cumulative time would also count whatever it happened to import first, e.g. boto3).
PARTS = (
    "aws_xray_sdk",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "jwt",
    "card_tokens",
    "cryptography",
    "botocore",
)


# The handler's imports, split into steps in the order they load, on top of the floor's own
# imports: each step's time is what it adds (cold_child.py, side "parts").
IMPORT_STEPS = [
    [
        "floor's imports (boto3, cryptography)",
        [
            "boto3",
            "botocore.config",
            "cryptography.hazmat.primitives.ciphers.aead",
            "cryptography.hazmat.primitives.asymmetric.ec",
            "cryptography.hazmat.primitives.asymmetric.rsa",
            "cryptography.hazmat.primitives.asymmetric.padding",
            "cryptography.hazmat.primitives.serialization",
        ],
    ],
    ["aws_xray_sdk.core (Tracer's provider)", ["aws_xray_sdk.core"]],
    [
        "Powertools Logger, Metrics, Tracer",
        [
            "aws_lambda_powertools.logging",
            "aws_lambda_powertools.metrics",
            "aws_lambda_powertools.tracing",
        ],
    ],
    ["Powertools event_handler", ["aws_lambda_powertools.event_handler"]],
    ["Powertools parameters", ["aws_lambda_powertools.utilities.parameters"]],
    ["PyJWT", ["jwt"]],
    ["card_tokens (the layer's own modules)", ["card_tokens.api", "card_tokens.payments"]],
    ["the handler module", ["app"]],
]


def import_profile(stderr: str) -> dict[str, dict[str, float]]:
    """Self time (ms) of the imported modules from `-X importtime`: by top package, by part."""
    packages: dict[str, float] = defaultdict(float)
    parts: dict[str, float] = dict.fromkeys(PARTS, 0.0)
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if not match:
            continue
        name, self_ms = match.group(4), int(match.group(1)) / 1000
        packages[name.split(".")[0]] += self_ms
        for prefix in PARTS:
            if name == prefix or name.startswith(prefix + "."):
                parts[prefix] += self_ms
    return {"packages": dict(packages), "parts": parts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--deps", choices=("layer", "venv"), default="layer")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--parallel", type=int, default=1, help="children at once (>1 only for smoke runs)"
    )
    args = parser.parse_args(argv)

    from local.emulator import local_aws_environment, start_moto, use_local_aws

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    use_local_aws(endpoint)
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "bench-cold"
    server = start_moto("127.0.0.1", port)
    try:
        # The handlers log and print metrics to stdout: the minting here is not what is measured.
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            results = _run(args, endpoint, local_aws_environment(endpoint))
    finally:
        server.stop()
    args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


def _run(args: argparse.Namespace, endpoint: str, aws_env: dict[str, str]) -> dict[str, Any]:
    stack_environment, issue_function = _provision(aws_env)
    events = _events()
    deps, deps_note = layer_dependencies(args.deps)
    # Tokens for every payment child (and the discarded first runs), minted by the real handler.
    needed = 2 * len(VARIANTS) * (args.runs + 2) + 4
    tokens = [_mint(issue_function, events) for _ in range(needed)]
    with tempfile.TemporaryDirectory(prefix="card-tokens-cold-") as scratch:
        children = Children(
            Path(scratch), deps, events, tokens, {**stack_environment, **aws_env}, args.parallel
        )
        # Discarded first runs: they fill the bytecode cache of the precompiled variant and the
        # machine's file cache for both, so no variant pays for being first.
        children.batch(
            [(v, children.spec(side, route), []) for side, route in KINDS for v in VARIANTS]
        )
        profiles = _import_profiles(children)
        import_steps = _import_steps(children, 3 if args.runs >= 3 else 1)
        samples = _samples(children, args.runs)
    return {
        "runs": args.runs,
        "dependencies": deps_note,
        "endpoint": "moto server over loopback HTTP",
        "samples": samples,
        "import_profiles": profiles,
        "import_steps": import_steps,
    }


def _provision(aws_env: dict[str, str]) -> tuple[dict[str, str], Any]:
    """The stack on the moto server, with a first signing key: its functions' environment, and
    the issuing function (loaded here, to mint the payments' tokens)."""
    from local.cfn import load_template
    from local.lambda_runtime import functions_from_template, put_layers_on_path
    from local.provision import provision_stack
    from local.rotation import rotate

    template = load_template()
    stack = provision_stack(STACK_NAME, template)
    os.environ.update(stack.environment)
    os.environ.update(aws_env)  # the stack declares AWS_ENDPOINT_URL="" (empty in AWS): ours wins
    put_layers_on_path(template)
    functions = functions_from_template(template, STACK_NAME)
    rotate(
        stack.environment["SIGNING_KEY_SECRET_ID"],
        functions["RotateSigningKeyFunction"].invoke,
    )
    return stack.environment, functions["IssueTokenFunction"]


def _timeout(function: str) -> int:
    """The function's Timeout: the time left its context reports, as Lambda's does."""
    from local.cfn import load_template

    timeout: int = load_template()["Resources"][function]["Properties"]["Timeout"]
    return timeout


Job = tuple[str, dict[str, Any], list[str]]  # (variant, the child's spec, interpreter flags)


class Children:
    """Child processes over copies of the sources: what each one gets and how they are run."""

    def __init__(
        self,
        workdir: Path,
        deps: Path,
        events: dict[str, dict[str, Any]],
        tokens: list[str],
        stack_environment: dict[str, str],
        parallel: int,
    ) -> None:
        self.roots = source_copies(workdir)
        self.pycache = workdir / "pycache"
        self.deps, self.events, self.tokens, self.parallel = deps, events, tokens, parallel
        self.function_environment = {**stack_environment, "AWS_LAMBDA_FUNCTION_NAME": "bench-cold"}
        self.env = {
            name: os.environ[name]
            for name in ("PATH", "HOME", "LANG", "TMPDIR")
            if name in os.environ
        }
        self.env.update(self.function_environment)
        self.env["POWERTOOLS_TRACE_DISABLED"] = "true"

    def paths(self, side: str, route: str) -> list[str]:
        return child_paths(side, route, self.roots, self.deps)

    def spec(self, side: str, route: str) -> dict[str, Any]:
        if route == "issue":
            event = self.events["issue"]
        else:
            event = _payment_event(self.events, self.tokens.pop())
        return {
            "side": side,
            "route": route,
            "paths": self.paths(side, route),
            "event": event,
            "function_name": f"{STACK_NAME}-{FUNCTIONS[route]}",
            "timeout": _timeout(FUNCTIONS[route]),
            "environment": self.function_environment,
        }

    def batch(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """Run children one at a time (the figures), or a few at once (a smoke run)."""

        def one(job: Job) -> dict[str, Any]:
            variant, spec, extra = job
            return run_child(interpreter_flags(variant, self.pycache), spec, self.env, extra)

        if self.parallel <= 1:
            return [one(job) for job in jobs]
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            return list(pool.map(one, jobs))


def _import_profiles(children: Children) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Where the import time goes (one run each, not used for the ratios)."""
    profiles: dict[str, dict[str, dict[str, dict[str, float]]]] = {"as_built": {}}
    profiled = [("as_built", s, r) for s, r in KINDS if s == "handler" or r == "issue"]
    results = children.batch(
        [(v, children.spec(s, r), ["-X", "importtime"]) for v, s, r in profiled]
    )
    for (variant, side, route), result in zip(profiled, results, strict=True):
        profiles[variant][f"{side}:{route}"] = import_profile(result["stderr"])
    return profiles


def _import_steps(children: Children, runs: int) -> dict[str, dict[str, float]]:
    """Marginal import costs, a few runs per variant: medians, ms."""
    spec = {
        "side": "parts",
        "route": "issue",
        "paths": children.paths("handler", "issue"),
        "steps": IMPORT_STEPS,
    }
    jobs: list[Job] = [(variant, spec, []) for _ in range(runs) for variant in VARIANTS]
    steps: dict[str, dict[str, list[float]]] = {v: {} for v in VARIANTS}
    for (variant, _, _), result in zip(jobs, children.batch(jobs), strict=True):
        for label, seconds in result["parts"]:
            steps[variant].setdefault(label, []).append(seconds * 1000)
    return {
        variant: {label: statistics.median(ms) for label, ms in by_label.items()}
        for variant, by_label in steps.items()
    }


def _samples(children: Children, runs: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The figures: every kind in every variant, `runs` times."""
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        variant: {f"{side}:{route}": [] for side, route in KINDS} for variant in VARIANTS
    }
    for run in range(runs):
        # Interleaved, with the order rotating each run, so drift on a shared machine
        # lands on every kind alike.
        order = [(variant, kind) for variant in VARIANTS for kind in KINDS]
        shift = run % len(order)
        order = order[shift:] + order[:shift]
        jobs: list[Job] = [(v, children.spec(side, route), []) for v, (side, route) in order]
        for (variant, (side, route)), result in zip(order, children.batch(jobs), strict=True):
            result.pop("stderr")
            samples[variant][f"{side}:{route}"].append(result)
    return samples


def _events() -> dict[str, dict[str, Any]]:
    events_dir = ROOT / "events"
    return {
        "issue": json.loads((events_dir / "issue_token.json").read_text(encoding="utf-8")),
        "pay_template": json.loads(
            (events_dir / "process_payment.json").read_text(encoding="utf-8")
        ),
    }


def _mint(function: Any, events: dict[str, dict[str, Any]]) -> str:
    response = function.invoke(json.loads(json.dumps(events["issue"])))
    if response["statusCode"] != 201:
        raise RuntimeError(f"minting a token failed: {response['statusCode']}")
    token: str = json.loads(response["body"])["token"]
    return token


def _payment_event(events: dict[str, dict[str, Any]], token: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(json.dumps(events["pay_template"]))
    body = json.loads(event["body"])
    body["token"] = token
    event["body"] = json.dumps(body)
    key = "cold-" + hashlib.sha256(token.encode()).hexdigest()[:32]
    # Payload 1.0: the header's last value, and all of its values.
    event["headers"]["Idempotency-Key"] = key
    event["multiValueHeaders"]["Idempotency-Key"] = [key]
    return event


if __name__ == "__main__":
    sys.exit(main())
