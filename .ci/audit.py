"""pip-audit over pinned requirements files that fails, saying why, when it cannot audit.

Run as it is on a machine that cannot reach an advisory database, pip-audit skips every
dependency and still reports "No known vulnerabilities found". This script never passes that way:

1. It probes the advisory services pip-audit can use, with the very request pip-audit would make
   for a pinned package: PyPI's per-release JSON API (GET pypi.org/pypi/NAME/VERSION/json, whose
   `vulnerabilities` key carries the advisories), OSV (POST api.osv.dev/v1/query, or --osv-url)
   and Ecosyste.ms (GET advisories.ecosyste.ms/api/v1/advisories). A pypi.org that only serves
   packages (a mirror or cache) answers 404 there: pip-audit takes that as "not on PyPI" and
   skips the package. When no service answers, it exits 3 with what each one said and what to
   do, before pip-audit is even needed (the probe is standard library only).
2. It resolves each requirements file with pip (`pip install --dry-run --ignore-installed
   --report`): what pip installs from it into an empty environment, the file's pins and every
   transitive dependency (the files pin only direct ones, so auditing them with --no-deps would
   leave those out). pip-audit's own resolution is not used: it installs pip, setuptools and wheel
   (and with them packaging) in its scratch virtualenv first and then never audits those.
3. It runs pip-audit on that fully pinned list (--no-deps --disable-pip), with the arguments
   after `--`, which must include --strict: a dependency that cannot be audited fails the run.
4. It reads pip-audit's JSON report and fails unless every resolved package was audited, none
   skipped, each at its resolved version (so the file's own pins too).

Exit status: 0 audited, no known vulnerabilities; 1 vulnerabilities, or an audit that failed or
came back incomplete; 2 usage; 3 no advisory database reachable.

    python .ci/audit.py --probe-only layers/card_tokens/requirements.txt
    python .ci/audit.py --pip-audit .venv/pip-audit/bin/pip-audit FILE... -- --strict
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_OSV_URL = "https://api.osv.dev/v1/query"
ESMS_URL = "https://advisories.ecosyste.ms/api/v1/advisories"
# `auto` takes the first that answers, in this order (pypi is pip-audit's default).
SERVICES = ("pypi", "osv", "esms")
PROBE_TIMEOUT = 15  # seconds, pip-audit's own default --timeout
EXIT_FINDINGS, EXIT_UNREACHABLE = 1, 3  # and 2, argparse's, for usage errors

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;#]+)")
INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s+|=)(\S+)")


class UnreachableError(Exception):
    """An advisory service did not give an answer pip-audit could use."""


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503)
    version: str


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path, seen: frozenset[Path] = frozenset()) -> list[Pin]:
    """Every `name==version` of a requirements file and of the files it includes with -r."""
    pins: list[Pin] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if include := INCLUDE.match(line):
            child = (path.parent / include.group(1)).resolve()
            if child not in seen:
                pins += read_pins(child, seen | {path.resolve()})
        elif pin := PIN.match(line):
            pins.append(Pin(canonical(pin.group(1)), pin.group(2)))
    return pins


def _fetch(url: str, body: dict[str, Any] | None = None) -> Any:
    """The JSON at `url` (POSTed `body`), or UnreachableError saying what happened instead."""
    method = "GET" if body is None else "POST"
    if urllib.parse.urlsplit(url).scheme not in {"https", "http"}:
        raise UnreachableError(f"{method} {url} -> not an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Accept": "application/json", "Content-Type": "application/json"},
        method=method,
    )
    try:
        # Proxies come from the environment (HTTPS_PROXY, NO_PROXY), as for pip-audit's requests.
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as error:
        hint = ""
        if error.code == 404 and url.startswith("https://pypi.org/pypi/"):
            hint = (
                " (pypi.org answers, but without the per-release JSON that carries the"
                " advisories: a package mirror or cache without PyPI's JSON API stands in for"
                " pypi.org, or the pin is not on PyPI; pip-audit would skip such a package)"
            )
        raise UnreachableError(f"{method} {url} -> HTTP {error.code}{hint}") from error
    except urllib.error.URLError as error:
        raise UnreachableError(f"{method} {url} -> {error.reason}") from error
    except (OSError, ValueError) as error:  # timeouts, resets, a body that is not JSON
        raise UnreachableError(f"{method} {url} -> {error!r}") from error


def _probe_pypi(pin: Pin, _osv_url: str) -> str:
    url = f"https://pypi.org/pypi/{pin.name}/{pin.version}/json"
    document = _fetch(url)
    if not isinstance(document, dict) or not isinstance(document.get("vulnerabilities"), list):
        # pip-audit reads a missing key as "no vulnerabilities".
        raise UnreachableError(f"GET {url} -> JSON without a `vulnerabilities` list")
    return url


def _probe_osv(pin: Pin, osv_url: str) -> str:
    query = {"package": {"name": pin.name, "ecosystem": "PyPI"}, "version": pin.version}
    if not isinstance(_fetch(osv_url, query), dict):
        raise UnreachableError(f"POST {osv_url} -> not an OSV query answer")
    return osv_url


def _probe_esms(pin: Pin, _osv_url: str) -> str:
    url = f"{ESMS_URL}?{urllib.parse.urlencode({'ecosystem': 'pypi', 'package_name': pin.name})}"
    if not isinstance(_fetch(url), list):
        raise UnreachableError(f"GET {url} -> not a list of advisories")
    return url


PROBES: dict[str, Callable[[Pin, str], str]] = {
    "pypi": _probe_pypi,
    "osv": _probe_osv,
    "esms": _probe_esms,
}


def probe(service: str, pin: Pin, osv_url: str) -> tuple[str | None, list[str]]:
    """The first service (of `service`, or of all for `auto`) that answers, and what each said."""
    said: list[str] = []
    for name in SERVICES if service == "auto" else (service,):
        try:
            url = PROBES[name](pin, osv_url)
        except UnreachableError as error:
            said.append(f"{name}: {error}")
        else:
            said.append(f"{name}: {url} answers")
            return name, said
    return None, said


def unreachable_message(said: Sequence[str]) -> str:
    lines = [
        "error: no advisory database is reachable from here, so nothing was audited.",
        *(f"  {line}" for line in said),
        "Without these checks pip-audit would skip every dependency it cannot look up and still"
        " exit 0 as if it had found nothing.",
        "What to do: run `make audit` where pypi.org's JSON API or api.osv.dev is reachable",
        "(the `audit` job of .github/workflows/ci.yml runs it on GitHub's runners), or through",
        "a proxy that reaches one (HTTPS_PROXY=...), or against an OSV mirror:",
        "make audit AUDIT_SERVICE=osv OSV_URL=https://.../v1/query",
    ]
    return "\n".join(lines)


def check_report(report: dict[str, Any], expected: Sequence[Pin]) -> tuple[list[str], list[str]]:
    """(vulnerabilities, problems) in pip-audit's JSON report, which should cover `expected`."""
    vulnerabilities: list[str] = []
    problems: list[str] = []
    audited: dict[str, str] = {}
    for dependency in report.get("dependencies", []):
        name = dependency.get("name", "?")
        if "skip_reason" in dependency or "version" not in dependency:
            problems.append(f"{name} was skipped: {dependency.get('skip_reason', 'no version')}")
            continue
        audited[canonical(name)] = dependency["version"]
        for vuln in dependency.get("vulns", []):
            aliases = ", ".join(sorted(set(vuln.get("aliases", [])) - {vuln["id"]}))
            fixes = ", ".join(vuln.get("fix_versions", [])) or "none yet"
            vulnerabilities.append(
                f"{name} {dependency['version']}: {vuln['id']}"
                + (f" ({aliases})" if aliases else "")
                + f", fixed in: {fixes}"
            )
    if not audited:
        problems.append("pip-audit audited no dependency at all")
    for pin in expected:
        if audited.get(pin.name) != pin.version:
            got = audited.get(pin.name)
            problems.append(
                f"{pin.name}=={pin.version} was not audited"
                + (f" (pip-audit audited {got})" if got else "")
            )
    return vulnerabilities, problems


def _run(command: Sequence[str]) -> tuple[int, str]:
    try:
        result = subprocess.run(  # noqa: S603 - our own argument list, no shell
            command, capture_output=True, text=True, check=False
        )
    except OSError as error:
        return 127, f"cannot run {command[0]}: {error} (`make audit` installs pip-audit)"
    return result.returncode, result.stdout + result.stderr


def _tail(output: str, lines: int = 40) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


def resolve(python: str, requirements: Path, directory: Path) -> list[Pin] | str:
    """What pip installs from `requirements` into an empty environment, or why it could not."""
    report = directory / "resolution.json"
    code, output = _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--no-input",
            "--disable-pip-version-check",
            "--report",
            str(report),
            "--requirement",
            str(requirements),
        ]
    )
    if code != 0 or not report.exists():
        return f"pip could not resolve it (exit {code}):\n{_tail(output)}"
    packages = json.loads(report.read_text(encoding="utf-8")).get("install", [])
    return [
        Pin(canonical(package["metadata"]["name"]), package["metadata"]["version"])
        for package in packages
    ]


def audit_file(
    pip_audit: str,
    python: str,
    requirements: Path,
    service: str,
    osv_url: str,
    extra: Sequence[str],
) -> bool:
    def fail(why: str) -> bool:
        print(f"error: {requirements}: {why}", file=sys.stderr)
        return False

    pins = read_pins(requirements)
    print(f"== {requirements}: {len(pins)} pins; resolving with pip, then {service} advisories")
    sys.stdout.flush()
    with tempfile.TemporaryDirectory(prefix="audit-") as name:
        directory = Path(name)
        resolved = resolve(python, requirements, directory)
        if isinstance(resolved, str):
            return fail(resolved)
        versions = {pin.name: pin.version for pin in resolved}
        unresolved = [pin for pin in pins if versions.get(pin.name) != pin.version]
        if unresolved or not resolved:
            # pip honours == pins or fails: this would be a bug in reading the file or pip.
            return fail(f"pip's resolution is not the file's pins: {unresolved or 'empty'}")
        locked = directory / "resolved.txt"
        locked.write_text("".join(f"{p.name}=={p.version}\n" for p in resolved), encoding="utf-8")
        output_file = directory / "report.json"
        code, output = _run(
            [
                pip_audit,
                "--requirement",
                str(locked),
                "--no-deps",
                "--disable-pip",
                "--vulnerability-service",
                service,
                *(["--osv-url", osv_url] if service == "osv" else []),
                "--format",
                "json",
                "--aliases",
                "on",
                "--output",
                str(output_file),
                "--progress-spinner",
                "off",
                *extra,
            ]
        )
        text = output_file.read_text(encoding="utf-8") if output_file.exists() else ""
    if not text.strip():
        # --strict makes pip-audit stop at the first dependency it cannot audit, without a report.
        print(_tail(output), file=sys.stderr)
        skipped = re.search(r"could not be audited|skip", output, re.IGNORECASE)
        why = "a dependency could not be audited" if skipped else "the advisory service failed"
        return fail(f"pip-audit exited {code} without a report: {why}.")
    vulnerabilities, problems = check_report(json.loads(text), resolved)
    for line in vulnerabilities:
        print(f"  VULNERABLE {line}")
    for line in problems:
        print(f"  INCOMPLETE {line}")
    if code != 0 and not vulnerabilities and not problems:
        print(_tail(output), file=sys.stderr)
        problems.append(f"pip-audit exited {code}")
    if vulnerabilities or problems:
        return fail(f"{len(vulnerabilities)} known vulnerabilities, {len(problems)} audit problems")
    print(
        f"ok: {requirements}: {len(resolved)} packages audited ({len(pins)} pinned in the file,"
        f" {len(resolved) - len(pins)} resolved by pip), no known vulnerabilities"
    )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, extra = args_in[:cut], args_in[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog=".ci/audit.py", description="pip-audit that never passes without auditing."
    )
    parser.add_argument("requirements", nargs="+", type=Path, help="pinned requirements files")
    parser.add_argument("--service", choices=("auto", *SERVICES), default="auto")
    parser.add_argument("--osv-url", default=os.environ.get("PIP_AUDIT_OSV_URL") or DEFAULT_OSV_URL)
    parser.add_argument("--pip-audit", default="pip-audit", help="the pip-audit to run")
    parser.add_argument(
        "--python", default=sys.executable, help="the Python whose pip resolves the files"
    )
    parser.add_argument(
        "--probe-only", action="store_true", help="only check an advisory database answers"
    )
    args = parser.parse_args(args_in)

    if not args.probe_only and "--strict" not in extra:
        parser.error(
            "pass pip-audit's --strict after `--`: without it a dependency that cannot be audited"
            " is skipped and the audit still passes"
        )
    pins = [pin for path in args.requirements for pin in read_pins(path)]
    if not pins:
        parser.error("no name==version pin in the requirements files: nothing to probe with")

    service, said = probe(args.service, pins[0], args.osv_url)
    if service is None:
        print(unreachable_message(said), file=sys.stderr)
        return EXIT_UNREACHABLE
    print(f"advisory database: {said[-1]}")
    if args.probe_only:
        return 0

    results = [
        audit_file(args.pip_audit, args.python, path, service, args.osv_url, extra)
        for path in args.requirements
    ]
    return 0 if all(results) else EXIT_FINDINGS


if __name__ == "__main__":
    sys.exit(main())
