"""`make events`: regenerates events/ (one API Gateway event per route, and env.json).

The payment event needs a token that is fresh and unused, so a running stack issues it: the
local one (`make run`, --port) or a deployed one (--url). A second token pays once, so that
events/get_payment.json names a payment that exists.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from card_tokens_client.checkout_page import page_publishable_key
from local.cfn import TEMPLATE_PATH, load_deployed_template
from local.http_api import Route, build_rest_event, find_route, routes_from_template
from local.provision import STACK_NAME, function_environments, named_resolver
from local.sample_card import SAMPLE_CARD

EVENTS_DIR = TEMPLATE_PATH.parent / "events"
SAMPLE_IDEMPOTENCY_KEY = "order-1234-attempt-1"
# `sam local invoke` runs the function in Docker; the emulator is on the host.
DOCKER_HOST_ENDPOINT = "http://host.docker.internal:{port}"


class NoStackError(RuntimeError):
    pass


@dataclass(frozen=True)
class SampleRequest:
    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def payment_request(token: str, reference: str = "order-1234") -> dict[str, Any]:
    return {"token": token, "amount": 1999, "currency": "EUR", "reference": reference}


def sample_requests(token: str, payment_id: str) -> dict[str, SampleRequest]:
    """File name → the request it holds."""
    return {
        "issue_token.json": SampleRequest("POST", "/tokens", SAMPLE_CARD),
        "process_payment.json": SampleRequest(
            "POST",
            "/payments",
            payment_request(token),
            {"Idempotency-Key": SAMPLE_IDEMPOTENCY_KEY},
        ),
        "get_payment.json": SampleRequest("GET", f"/payments/{payment_id}"),
        "jwks.json": SampleRequest("GET", "/.well-known/jwks.json"),
    }


def sample_event(request: SampleRequest, routes: list[Route]) -> dict[str, Any]:
    """The event API Gateway would send for the request (same builder as the local stack)."""
    found = find_route(routes, request.method, request.path)
    if found is None:
        raise ValueError(f"{request.method} {request.path} is not a route of template.yaml")
    route, path_parameters = found
    body = None if request.body is None else json.dumps(request.body).encode()
    # Header names as a client writes them: payload 1.0 keeps the casing it was sent with.
    headers = {
        "Host": "127.0.0.1:3000",
        "User-Agent": "card-tokens-events",
        "Accept": "application/json",
    }
    if body is not None:
        headers |= {"Content-Type": "application/json", "Content-Length": str(len(body))}
    headers |= request.headers
    return build_rest_event(
        method=request.method,
        path=request.path,
        resource=route.path,
        headers=list(headers.items()),
        body=body,
        path_parameters=path_parameters,
    )


def env_json(moto_port: int = 5005, stack_name: str = STACK_NAME) -> dict[str, dict[str, str]]:
    """`sam local invoke --env-vars` file: each function's variables, pointed at `make run`.

    SAM applies only variables the template declares for the function: AWS_ENDPOINT_URL is
    written for every function and takes effect with `--parameter-overrides
    LocalEndpointUrl=...`, which makes the template declare it.
    """
    environments = function_environments(named_resolver(stack_name, load_deployed_template()))
    endpoint = DOCKER_HOST_ENDPOINT.format(port=moto_port)
    return {
        name: {**variables, "AWS_ENDPOINT_URL": endpoint}
        for name, variables in sorted(environments.items())
    }


def _call(
    base_url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - http(s) URL given by the developer
        base_url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - same URL as above
            document: dict[str, Any] = json.loads(response.read())
            return document
    except urllib.error.HTTPError as error:
        raise NoStackError(
            f"{method} {base_url}{path} answered {error.code}: is this a card-tokens stack "
            "with a signing key?"
        ) from error
    except (urllib.error.URLError, OSError) as error:
        raise NoStackError(
            f"no card-tokens stack answered at {base_url} ({error}). "
            "Start one with `make run`, or pass --url https://... of a deployed stack."
        ) from error


def fresh_samples(base_url: str) -> tuple[str, str]:
    """A fresh unused token, and the id of a payment made with another token (tokens of the
    page's merchant; the local stack takes the unsigned payment as that demo merchant's)."""
    _call(base_url, "GET", "/.well-known/jwks.json", None)
    key = page_publishable_key(base_url)
    merchant = {"Authorization": f"Bearer {key}"} if key else {}
    token = str(_call(base_url, "POST", "/tokens", SAMPLE_CARD, merchant)["token"])
    spent = str(_call(base_url, "POST", "/tokens", SAMPLE_CARD, merchant)["token"])
    payment = _call(base_url, "POST", "/payments", payment_request(spent, "order-events"))
    return token, str(payment["payment_id"])


def write_events(
    token: str, payment_id: str, moto_port: int, directory: Path = EVENTS_DIR
) -> list[Path]:
    routes = routes_from_template(load_deployed_template())
    written = []
    directory.mkdir(exist_ok=True)
    for name, request in sample_requests(token, payment_id).items():
        written.append(_write_json(directory / name, sample_event(request, routes)))
    written.append(_write_json(directory / "env.json", env_json(moto_port)))
    return written


def _write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def git_changes(paths: list[Path], root: Path = TEMPLATE_PATH.parent) -> str | None:
    """`git diff --stat` of these files against the index; None where git cannot tell."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603 - git, fixed arguments, our own paths
            [git, "diff", "--stat", "--", *(str(path.relative_to(root)) for path in paths)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.rstrip() if result.returncode == 0 else None


def report_written(paths: list[Path], root: Path = TEMPLATE_PATH.parent) -> str:
    """What `make events` says: the files it rewrote are tracked in git, and which changed."""
    lines = [
        f"Rewrote {len(paths)} files that git tracks: the sample events (and env.json) that "
        "the tests, `make invoke` and `sam local invoke` read.",
        *(f"  {path.relative_to(root)}" for path in paths),
    ]
    changes = git_changes(paths, root)
    if changes is None:
        lines.append("Compare them with the committed ones before you commit.")
    elif changes:
        lines += ["Changed from the committed ones (git diff --stat):", changes]
    else:
        lines.append("None differs from the committed ones.")
    lines += [
        "events/process_payment.json holds a token that expires in 15 minutes and pays once.",
        "Commit them, or put the committed ones back with `git checkout -- events/`.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.events", description=__doc__)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--port", type=int, default=3000, help="port of `make run` (3000)")
    where.add_argument("--url", help="base URL of a deployed stack instead")
    parser.add_argument(
        "--moto-port", type=int, default=5005, help="emulator port for env.json (5005)"
    )
    parser.add_argument(
        "--env-only", action="store_true", help="rewrite events/env.json only (no stack needed)"
    )
    args = parser.parse_args(argv)
    if args.env_only:
        path = _write_json(EVENTS_DIR / "env.json", env_json(args.moto_port))
        print(f"wrote {path.relative_to(TEMPLATE_PATH.parent)}")
        return 0
    base_url = args.url or f"http://127.0.0.1:{args.port}"
    try:
        token, payment_id = fresh_samples(base_url)
    except NoStackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report_written(write_events(token, payment_id, args.moto_port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
