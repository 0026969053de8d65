"""docs/integrate.md's snippets run as written, against the stack under test.

Every fenced block whose info string has a title (```python title="pay.py"```) is a snippet:
it is written to a file of that name and run with the environment variables the page's table
documents. Python runs with this interpreter (botocore and PyJWT are in the venv); Node runs
with `jose` from tests/browser/node_modules (pinned in its package-lock.json; `make
browser-deps` installs it).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from card_tokens.config import CLOCK_LEEWAY_SECONDS, MAX_TOKEN_LIFETIME_SECONDS
from card_tokens.tokens import REQUIRED_CLAIMS, TOKEN_TYPE
from local.cfn import load_template
from local.merchants import DEMO_PROFILE
from tests.cards import VISA
from tests.e2e.stack_process import DeployedStack, RunningLocalStack, StackUnderTest
from tests.support import REPO_ROOT, run_captured

PAGE = REPO_ROOT / "docs" / "integrate.md"
NODE_MODULES = REPO_ROOT / "tests" / "browser" / "node_modules"
SNIPPET = re.compile(
    r'^```(?P<language>[a-z]+) title="(?P<title>[^"]+)"\n(?P<code>.*?)^```$',
    re.MULTILINE | re.DOTALL,
)
RUN_SECONDS = 60
EXPECTED = {"tokenize.mjs", "pay.py", "verify_token.py", "verify-token.mjs"}


def snippets() -> dict[str, str]:
    found: dict[str, str] = {}
    for match in SNIPPET.finditer(PAGE.read_text(encoding="utf-8")):
        assert match["title"] not in found, f"two snippets are titled {match['title']}"
        found[match["title"]] = match["code"]
    return found


def documented_variables() -> set[str]:
    """The names in the first column of the page's table of environment variables."""
    text = PAGE.read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([A-Z_]+)` \|", text, re.MULTILINE))


def test_the_page_has_exactly_the_snippets_this_test_runs() -> None:
    assert set(snippets()) == EXPECTED


def test_every_variable_a_snippet_reads_is_in_the_page_table() -> None:
    read = set()
    for code in snippets().values():
        read |= set(re.findall(r'os\.environ\["([A-Z_]+)"\]', code))
        read |= set(re.findall(r"process\.env\.([A-Z_]+)", code))
    assert read, "the snippets read no configuration: the pattern above is out of date"
    assert read <= documented_variables(), f"not in the table: {read - documented_variables()}"


def test_the_local_values_in_the_table_are_the_template_defaults() -> None:
    parameters = load_template()["Parameters"]
    text = PAGE.read_text(encoding="utf-8")
    for variable, parameter in (
        ("CARD_TOKENS_ISSUER", "TokenIssuer"),
        ("CARD_TOKENS_AUDIENCE", "TokenAudience"),
    ):
        default = parameters[parameter]["Default"]
        assert f"| `{variable}` | the tokens' " in text
        assert f"`{default}` | the stack's `{parameter}` parameter |" in text
        assert f"{variable}={default}" in text  # the shell example


def test_the_arn_guidance_matches_the_template_api() -> None:
    # integrate.md's policy: <api-id> is the ApiId output, the stage is the REST API's StageName,
    # and the ARNs are exactly the routes that use IAM authorization (a path variable: "*")
    template = load_template()
    assert template["Outputs"]["ApiId"]["Value"] == {"Ref": "CardTokensApi"}
    api = template["Resources"]["CardTokensApi"]
    assert api["Type"] == "AWS::Serverless::Api", "update integrate.md's ARN guidance"
    stage = api["Properties"]["StageName"]
    signed = [
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "Api"
        and event["Properties"].get("Auth", {}).get("Authorizer") == "AWS_IAM"
    ]
    text = PAGE.read_text(encoding="utf-8")
    arns = re.findall(r'"(arn:aws:execute-api:[^"]+)"', text)
    assert sorted(arns) == sorted(
        f"arn:aws:execute-api:<region>:<account>:<api-id>/{stage}/{method}"
        + re.sub(r"\{[^}]+\}", "*", path)
        for method, path in signed
    )
    assert "OutputKey=='ApiId'" in text
    # and what an unsigned request gets: MISSING_AUTHENTICATION_TOKEN, which the API maps to 404
    missing = api["Properties"]["GatewayResponses"]["MISSING_AUTHENTICATION_TOKEN"]
    assert missing["StatusCode"] == "404"
    assert json.loads(missing["ResponseTemplates"]["application/json"]) == {"message": "Not Found"}
    assert re.search(r'no signature[^.]*`404 \{"message": "Not Found"\}`', " ".join(text.split()))


@pytest.mark.parametrize(
    ("title", "leeway"), [("verify_token.py", "leeway="), ("verify-token.mjs", "clockTolerance: ")]
)
def test_the_verifiers_apply_the_services_rules(title: str, leeway: str) -> None:
    # card_tokens.tokens.verify_token: required claims, typ, clock leeway, longest lifetime
    code = snippets()[title]
    (required,) = re.findall(r'\[("iss"[^]]*)\]', code)
    assert json.loads(f"[{required}]") == list(REQUIRED_CLAIMS)
    assert f'"{TOKEN_TYPE}"' in code
    assert f"{leeway}{CLOCK_LEEWAY_SECONDS}," in code
    assert f"> {MAX_TOKEN_LIFETIME_SECONDS}" in code


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The snippets as files, and node_modules within reach of the Node ones."""
    directory = tmp_path_factory.mktemp("snippets")
    for title, code in snippets().items():
        (directory / title).write_text(code, encoding="utf-8")
    if NODE_MODULES.is_dir():
        (directory / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    return directory


def snippet_environment(stack: StackUnderTest) -> dict[str, str]:
    """The page's variables for this stack. Locally: the demo caller's profile in the stack's
    credentials file (make run's .local-stack/credentials), template defaults."""
    environment = {**os.environ, "CARD_TOKENS_URL": stack.base_url}
    if isinstance(stack, DeployedStack):
        # The caller's own credentials sign, as the pipeline's e2e role does.
        environment["AWS_REGION"] = stack.region
        return environment
    assert isinstance(stack, RunningLocalStack)
    for name in [n for n in environment if n.startswith("AWS_") and n != "AWS_CA_BUNDLE"]:
        del environment[name]
    parameters = load_template()["Parameters"]
    environment |= {
        "AWS_REGION": "us-east-1",
        "AWS_SHARED_CREDENTIALS_FILE": str(stack.credentials_file),
        "AWS_PROFILE": DEMO_PROFILE,
        "AWS_CONFIG_FILE": os.devnull,
        "CARD_TOKENS_ISSUER": parameters["TokenIssuer"]["Default"],
        "CARD_TOKENS_AUDIENCE": parameters["TokenAudience"]["Default"],
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    return environment


def run(
    workdir: Path, command: list[str], environment: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return run_captured(command, cwd=workdir, env=environment, timeout=RUN_SECONDS)


def needs_verifier_settings(stack: StackUnderTest, environment: dict[str, str]) -> None:
    if isinstance(stack, DeployedStack) and not (
        environment.get("CARD_TOKENS_ISSUER") and environment.get("CARD_TOKENS_AUDIENCE")
    ):
        pytest.skip(
            "a deployed stack's TokenIssuer and TokenAudience are deploy parameters, not "
            "outputs: set CARD_TOKENS_ISSUER and CARD_TOKENS_AUDIENCE to verify its tokens"
        )


def needs_node(stack: StackUnderTest) -> None:
    if isinstance(stack, DeployedStack):
        pytest.skip(
            "the pipeline's e2e job installs no Node packages; the Node snippets run against "
            "the local stack"
        )
    # Given Node.js and jose (`make browser-deps`): a failure, not a skip, as for the browser test
    missing = []
    if shutil.which("node") is None:
        missing.append("node (apt-get install nodejs)")
    if not (NODE_MODULES / "jose" / "package.json").is_file():
        missing.append("jose in tests/browser/node_modules")
    if missing:
        pytest.fail("the Node snippets need " + ", ".join(missing) + ": run `make browser-deps`")


def tampered(token: str) -> str:
    """The token with its claims changed (exp + 1): same form, signature no longer matches."""
    header, claims, signature = token.split(".")
    document = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    document["exp"] += 1
    raw = json.dumps(document, separators=(",", ":")).encode()
    return f"{header}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}.{signature}"


def test_pay_py_pays_and_reads_the_payment_back(local_stack: StackUnderTest, workdir: Path) -> None:
    # Given a fresh token
    environment = snippet_environment(local_stack) | {"CARD_TOKEN": local_stack.issue_token()}

    # When pay.py runs as written
    first = run(workdir, [sys.executable, "pay.py"], environment)

    # Then it paid, and read the payment back
    assert first.returncode == 0, first.stdout + first.stderr
    created, read_back = first.stdout.splitlines()
    assert re.fullmatch(r"pay_[a-z2-7]{24} approved", created)
    assert read_back == "approved"
    # And run again with the same token, it is the same request: the same payment, not a 409
    again = run(workdir, [sys.executable, "pay.py"], environment)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines() == [created, "approved"]
    # And a refusal stops it with the service's answer, as the page shows
    refused = run(workdir, [sys.executable, "pay.py"], environment | {"CARD_TOKEN": "x.y.z"})
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith("POST /payments: 401 ")
    assert f"`{refused.stderr.strip()}`" in PAGE.read_text(encoding="utf-8")  # word for word


def foreign(token: str) -> str:
    """The same claims, signed by a key of another stack (another kid)."""
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "card+jwt", "kid": "other"})


# What each verifier says (integrate.md's troubleshooting quotes it) for an altered token and for
# one from another stack.
REASONS = {
    "verify_token.py": (
        "Signature verification failed",
        "Unable to find a signing key that matches",
    ),
    "verify-token.mjs": ("ERR_JWS_SIGNATURE_VERIFICATION_FAILED", "ERR_JWKS_NO_MATCHING_KEY"),
}


@pytest.mark.parametrize("verifier", sorted(REASONS))
def test_the_verifiers_accept_a_fresh_token_and_refuse_altered_or_foreign_ones(
    local_stack: StackUnderTest, workdir: Path, verifier: str
) -> None:
    environment = snippet_environment(local_stack)
    needs_verifier_settings(local_stack, environment)
    command = [sys.executable, verifier] if verifier.endswith(".py") else ["node", verifier]
    if command[0] == "node":
        needs_node(local_stack)
    token = local_stack.issue_token()

    # A token the stack just issued verifies
    valid = run(workdir, command, environment | {"CARD_TOKEN": token})
    assert valid.returncode == 0, valid.stdout + valid.stderr
    jti = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["jti"]
    assert valid.stdout.startswith(f"valid card token {jti}, expires at ")

    # An altered one, another stack's, one for another audience or issuer, and a non-token are
    # refused, saying why
    altered, other_stack = REASONS[verifier]
    page = PAGE.read_text(encoding="utf-8")
    assert f"`{altered}`" in page
    assert f"`{other_stack}`" in page
    for case, reason in (
        ({"CARD_TOKEN": tampered(token)}, altered),
        ({"CARD_TOKEN": foreign(token)}, other_stack),
        ({"CARD_TOKEN": token, "CARD_TOKENS_AUDIENCE": "someone-else"}, ""),
        ({"CARD_TOKEN": token, "CARD_TOKENS_ISSUER": "https://elsewhere.example"}, ""),
        ({"CARD_TOKEN": "not-a-token"}, ""),
    ):
        refused = run(workdir, command, environment | case)
        assert refused.returncode == 1, (case, refused.stdout, refused.stderr)
        assert refused.stdout == ""
        assert refused.stderr.startswith("invalid token: "), refused.stderr
        assert reason in refused.stderr


def test_tokenize_mjs_gets_a_token_and_reports_the_field_at_fault(
    merchant_stack: RunningLocalStack, workdir: Path
) -> None:
    needs_node(merchant_stack)
    # When the page's tokenize() is called as a page would call it: a good card, then a bad CVV
    script = """
        import { tokenize } from "./tokenize.mjs";
        const card = JSON.parse(process.env.CARD);
        const [url, key] = [process.env.CARD_TOKENS_URL, process.env.CARD_TOKENS_PUBLISHABLE_KEY];
        const answer = await tokenize(url, key, card);
        console.log(JSON.stringify(answer));
        try {
          await tokenize(url, key, { ...card, cvv: "12" });
        } catch (error) {
          const { code, field, message } = error;
          console.log(JSON.stringify({ code, field, message }));
        }
    """
    environment = snippet_environment(merchant_stack) | {
        "CARD": json.dumps(VISA),
        "CARD_TOKENS_PUBLISHABLE_KEY": str(merchant_stack.publishable_key),
    }
    result = run(workdir, ["node", "--input-type=module", "-e", script], environment)

    # Then the first gave a token for the card, the second an error naming the field
    assert result.returncode == 0, result.stdout + result.stderr
    issued, refused = (json.loads(line) for line in result.stdout.splitlines())
    merchant_stack.issued_tokens.append(issued["token"])  # the stack's output is scanned for it
    assert issued["token_type"] == "card+jwt"
    assert issued["card"] == {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}
    assert refused == {
        "code": "invalid_cvv",
        "field": "cvv",
        "message": "cvv must be 3 digits for Visa.",
    }
