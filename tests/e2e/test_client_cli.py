"""The `card-tokens` command (the installed console script) against the local stack: the
single-caller one, and `make run`'s, whose demo merchant's publishable key the command finds
on the checkout page, and whose other merchants pay with their profile (--profile)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.cards import DECLINED_VISA, VISA
from tests.e2e.stack_process import RunningLocalStack, free_port
from tests.e2e.test_cross_merchant_http import new_merchant
from tests.support import run_captured

COMMAND = Path(sys.executable).parent / "card-tokens"
PAN = VISA["card_number"]
DECLINED_PAN = DECLINED_VISA["card_number"]
CVV = "737"
# The CVV on its own, not as part of a token, an id or a timestamp.
CVV_SHOWN = re.compile(rf"(?<![\w:-]){CVV}(?![\w:-])")


def run_command(
    *args: str, stdin: str = "", env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if not COMMAND.is_file():
        pytest.fail(f"{COMMAND} is missing: run `make client` (pip install -e .)")
    return run_captured([str(COMMAND), *args], stdin=stdin, env=env, timeout=60)


def card_tokens(
    stack: RunningLocalStack, *args: str, stdin: str = "", env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_command("--url", stack.base_url, *args, stdin=stdin, env=env)


def local_environment(stack: RunningLocalStack) -> dict[str, str]:
    """A developer's shell after `make run`: its credentials file, and no key of their own."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.pop("CARD_TOKENS_PUBLISHABLE_KEY", None)
    return env | {
        "AWS_SHARED_CREDENTIALS_FILE": str(stack.credentials_file),
        "AWS_CONFIG_FILE": os.devnull,
    }


def echoes_card_data(result: subprocess.CompletedProcess[str], pan: str) -> bool:
    output = result.stdout + result.stderr
    return pan.replace(" ", "") in output.replace(" ", "") or CVV_SHOWN.search(output) is not None


def tokenize(
    stack: RunningLocalStack, pan: str, *options: str, env: Mapping[str, str] | None = None
) -> str:
    result = card_tokens(
        stack, "tokenize", "--quiet", *options, stdin=f"{pan}\n12/30\n{CVV}\n", env=env
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    stack.issued_tokens.append(token)  # the stack's log scan looks for it too
    return token


def test_tokenize_pay_and_get_through_the_command(local_stack: RunningLocalStack) -> None:
    tokenize_pay_and_get(local_stack)


def test_make_runs_demo_merchant_tokenizes_pays_and_reads_with_no_extra_step(
    merchant_stack: RunningLocalStack,
) -> None:
    # No key, no profile: the key is the checkout page's, the unsigned payment the demo merchant's
    tokenize_pay_and_get(merchant_stack, local_environment(merchant_stack))


def tokenize_pay_and_get(
    local_stack: RunningLocalStack, env: Mapping[str, str] | None = None
) -> None:
    # Given a card read from stdin, as a script would pass it
    result = card_tokens(local_stack, "tokenize", "--json", stdin=f"{PAN}\n12/30\n{CVV}\n", env=env)
    assert result.returncode == 0, result.stderr
    issued = json.loads(result.stdout)
    local_stack.issued_tokens.append(issued["token"])
    assert issued["card"] == {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}

    # When it pays, reading the token from stdin
    paid = card_tokens(
        local_stack,
        "pay",
        "--amount",
        "1999",
        "--currency",
        "EUR",
        "--reference",
        "order-cli",
        stdin=issued["token"] + "\n",
        env=env,
    )

    # Then the payment is approved and readable back
    assert paid.returncode == 0, paid.stderr
    first_line = paid.stdout.splitlines()[0]
    assert first_line.startswith("Payment pay_")
    assert first_line.endswith(": approved")
    assert "19.99 EUR" in paid.stdout
    assert "Visa •••• 4242" in paid.stdout
    payment_id = first_line.split()[1].rstrip(":")
    read = card_tokens(local_stack, "get", payment_id, "--json", env=env)
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["reference"] == "order-cli"
    assert not any(echoes_card_data(r, PAN) for r in (result, paid, read))


def test_tokenize_shows_brand_last4_and_lifetime_never_the_card(
    local_stack: RunningLocalStack,
) -> None:
    result = card_tokens(
        local_stack, "tokenize", "--card-number", PAN, "--exp", "12/30", "--cvv", CVV
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Token for Visa •••• 4242 (exp 12/2030)")
    assert "(in 1" in result.stdout  # 15 minutes (900 s) minus a moment
    local_stack.issued_tokens.append(result.stdout.split("token    ")[1].strip())
    assert not echoes_card_data(result, PAN)


def test_a_declined_card_exits_3_with_its_decline_code(local_stack: RunningLocalStack) -> None:
    token = tokenize(local_stack, DECLINED_PAN)

    result = card_tokens(local_stack, "pay", token, "--amount", "500", "--currency", "EUR")

    assert result.returncode == 3
    assert result.stdout.splitlines()[0].endswith(": declined (card_declined)")
    assert not echoes_card_data(result, DECLINED_PAN)


def test_an_invalid_card_exits_1_naming_the_field(local_stack: RunningLocalStack) -> None:
    result = card_tokens(local_stack, "tokenize", stdin=f"4242 4242 4242 4241\n12/30\n{CVV}\n")

    assert result.returncode == 1
    assert result.stderr == (
        "card-tokens: error: 400 invalid_card_number (card_number): card_number fails the Luhn "
        "check: a digit is probably mistyped.\n"
    )
    assert "4241" not in result.stdout + result.stderr


def test_a_token_used_twice_is_a_409(local_stack: RunningLocalStack) -> None:
    token = tokenize(local_stack, PAN)
    assert (
        card_tokens(local_stack, "pay", token, "--amount", "100", "--currency", "EUR").returncode
        == 0
    )

    again = card_tokens(local_stack, "pay", token, "--amount", "200", "--currency", "EUR")

    assert again.returncode == 1
    assert "409 token_already_used" in again.stderr


def test_jwks_lists_the_stacks_signing_keys(local_stack: RunningLocalStack) -> None:
    expected = local_stack.api.request("GET", "/.well-known/jwks.json").json()

    result = card_tokens(local_stack, "jwks")

    assert result.returncode == 0, result.stderr
    for key in expected["keys"]:
        assert f"  {key['kid']}  {key['alg']}" in result.stdout


@pytest.mark.parametrize(
    "command",
    [("jwks",), ("pay", "a.b.c", "--amount", "1999", "--currency", "EUR")],
    ids=["jwks", "pay"],
)
def test_without_a_stack_the_command_asks_whether_it_is_running(command: tuple[str, ...]) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = run_command("--url", url, *command)

    # Then one line, and no retry hint for a payment: a refused connection charged nothing
    assert result.returncode == 1
    assert result.stderr == (
        f"card-tokens: error: could not reach {url}: is the local stack running? (make run)\n"
    )


def test_another_local_merchants_profile_cannot_pay_the_demo_merchants_token(
    merchant_stack: RunningLocalStack,
) -> None:
    # Given a second local merchant (a profile in the stack's credentials file) and a token of
    # the demo merchant's
    shop = new_merchant(merchant_stack, "cli-shop").merchant
    env = local_environment(merchant_stack)
    demo_token = tokenize(merchant_stack, PAN, env=env)
    as_shop = ("--profile", shop.profile)
    pay = ("--amount", "1999", "--currency", "EUR")

    # When the second merchant pays with it, signed with its profile
    refused = card_tokens(merchant_stack, *as_shop, "pay", demo_token, *pay, env=env)

    # Then invalid_token, as for a forged token; the demo merchant still pays it (unsigned), and
    # the second merchant pays its own token with its own key and profile
    assert refused.returncode == 1
    assert "401 invalid_token" in refused.stderr
    assert card_tokens(merchant_stack, "pay", demo_token, *pay, env=env).returncode == 0
    own = tokenize(merchant_stack, PAN, "--publishable-key", shop.publishable_key, env=env)
    paid = card_tokens(merchant_stack, *as_shop, "pay", own, *pay, env=env)
    assert paid.returncode == 0, paid.stderr
    assert shop.publishable_key not in refused.stderr + paid.stdout + paid.stderr
