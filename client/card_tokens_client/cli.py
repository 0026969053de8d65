"""card-tokens: tokenize a card, pay with a token, read a payment, list the JWKS.

Talks to the local stack (`make run`, http://127.0.0.1:3000) by default, or to a deployed stack
with --url; the payment routes of a deployed stack are SigV4-signed with your AWS credentials.
`tokenize` sends the merchant's publishable key: --publishable-key or CARD_TOKENS_PUBLISHABLE_KEY,
else, on this machine, the key of the local stack's checkout page (the demo merchant's).
Card data comes from options, from prompts (nothing echoed), or from standard input, one value
a line; the card number and security code are never printed back: only brand and last four.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

from card_tokens_client import __version__
from card_tokens_client.api import (
    DEFAULT_URL,
    ApiError,
    CardInput,
    CardTokensApi,
    InvalidBaseUrl,
    Unreachable,
)
from card_tokens_client.checkout_page import page_publishable_key
from card_tokens_client.merchant_commands import (
    AwsClients,
    ClientsFactory,
    RegistryUnavailable,
    add_merchant_commands,
    run_merchant_command,
)
from card_tokens_client.merchants import InvalidMerchant, RegistryError
from card_tokens_client.signing import RequestSigner, SigningError, is_loopback

EXIT_OK = 0
EXIT_ERROR = 1  # the API refused the request, or no answer
EXIT_USAGE = 2  # argparse's own code for bad options
EXIT_DECLINED = 3  # `pay`: the request succeeded, the card did not

BRAND_NAMES = {
    "amex": "American Express",
    "diners": "Diners Club",
    "discover": "Discover",
    "jcb": "JCB",
    "mastercard": "Mastercard",
    "unionpay": "UnionPay",
    "visa": "Visa",
}
# The currencies the API takes, spelled as it takes them (ISO 4217, capitals), and the API's
# own words when one is refused: `eur` is refused here as the API refuses it.
CURRENCIES = ("AUD", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "JPY", "NOK", "PLN", "SEK", "USD")
CURRENCY_RULE = f"currency must be one of {', '.join(CURRENCIES)} (ISO 4217, in capitals)."
# ISO 4217 minor-unit digits of the supported currencies that do not have two.
MINOR_DIGITS = {"JPY": 0}
# Errors after which the API says nothing was charged: a retry needs no particular key.
NOTHING_CHARGED = frozenset({"processor_error", "service_unavailable"})

Prompt = Callable[[str], str]
PageKey = Callable[[str, float], str | None]  # base URL, timeout → the checkout page's key
PUBLISHABLE_KEY_ENV = "CARD_TOKENS_PUBLISHABLE_KEY"
ApiFactory = Callable[[str, RequestSigner | None, float], CardTokensApi]
READ_STDIN = "-"  # in place of the token: read it from stdin


class UsageError(Exception):
    """Bad input found after argparse (an expiry, a missing value): exit 2, nothing echoed."""


# ---------------------------------------------------------------------------- formatting


def card_label(card: dict[str, Any]) -> str:
    brand = str(card.get("brand", "card"))
    return f"{BRAND_NAMES.get(brand, brand)} •••• {card.get('last4', '????')}"


def format_amount(amount: int, currency: str) -> str:
    digits = MINOR_DIGITS.get(currency, 2)
    if digits == 0:
        return f"{amount} {currency}"
    whole, fraction = divmod(amount, 10**digits)
    return f"{whole}.{fraction:0{digits}d} {currency}"


def time_left(expires_at: str, now: datetime) -> str:
    try:
        expires = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return "unknown"
    seconds = int((expires - now).total_seconds())
    if seconds <= 0:
        return "expired"
    minutes, seconds = divmod(seconds, 60)
    return f"in {minutes}m {seconds:02d}s"


def describe_token(issued: dict[str, Any], now: datetime) -> str:
    card = issued.get("card", {})
    expiry = f"{int(card.get('exp_month', 0)):02d}/{card.get('exp_year', '????')}"
    expires_at = str(issued.get("expires_at", ""))
    return "\n".join(
        [
            f"Token for {card_label(card)} (exp {expiry})",
            f"  expires  {expires_at} ({time_left(expires_at, now)}); single use",
            f"  token    {issued.get('token', '')}",
        ]
    )


def describe_payment(payment: dict[str, Any]) -> str:
    status = str(payment.get("status", "unknown"))
    headline = f"Payment {payment.get('payment_id', '?')}: {status}"
    if payment.get("decline_code"):
        headline += f" ({payment['decline_code']})"
    amount = format_amount(int(payment.get("amount", 0)), str(payment.get("currency")))
    lines = [
        headline,
        f"  amount     {amount}",
        f"  card       {card_label(payment.get('card', {}))}",
    ]
    if payment.get("reference"):
        lines.append(f"  reference  {payment['reference']}")
    if payment.get("created_at"):
        lines.append(f"  created    {payment['created_at']}")
    return "\n".join(lines)


def describe_jwks(jwks: dict[str, Any]) -> str:
    keys = [key for key in jwks.get("keys", []) if isinstance(key, dict)]
    lines = [f"{len(keys)} verification key{'s' if len(keys) != 1 else ''}"]
    for key in keys:
        shape = f"{key.get('kty')} {key.get('crv')}" if key.get("crv") else str(key.get("kty"))
        lines.append(f"  {key.get('kid')}  {key.get('alg')}  {shape}  use={key.get('use')}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- input


def parse_expiry(text: str) -> tuple[int, int]:
    """MM/YY or MM/YYYY (also MM-YY) → (month, four-digit year). Range checks are the API's."""
    month_text, separator, year_text = text.strip().replace("-", "/").partition("/")
    if not separator or not month_text.isdigit() or not year_text.isdigit():
        raise UsageError("the expiry must look like MM/YY or MM/YYYY")
    if len(month_text) > 2 or len(year_text) not in (2, 4):
        raise UsageError("the expiry must look like MM/YY or MM/YYYY")
    year = int(year_text)
    return int(month_text), 2000 + year if len(year_text) == 2 else year


class Prompter:
    """Asks for what the options did not give: hidden prompts on a terminal, lines from a pipe."""

    def __init__(
        self,
        stdin: TextIO,
        stderr: TextIO,
        hidden: Prompt = getpass.getpass,
        visible: Prompt = input,
    ) -> None:
        self.stdin = stdin
        self.stderr = stderr
        self.hidden = hidden
        self.visible = visible

    def ask(self, label: str, *, secret: bool) -> str:
        if not self.stdin.isatty():
            line = self.stdin.readline()
            if not line:
                raise UsageError(f"{label.lower()} is missing: pass it as an option or on stdin")
            return line.strip()
        answer = self.hidden(f"{label}: ") if secret else self.visible(f"{label}: ")
        return answer.strip()


def read_card(args: argparse.Namespace, prompter: Prompter) -> CardInput:
    number = args.card_number or prompter.ask("Card number", secret=True)
    expiry = args.exp or prompter.ask("Expiry (MM/YY)", secret=False)
    cvv = args.cvv or prompter.ask("Security code", secret=True)
    month, year = parse_expiry(expiry)
    return CardInput(number, month, year, cvv, args.name)


def read_token(args: argparse.Namespace, prompter: Prompter) -> str:
    if args.token and args.token != READ_STDIN:
        return str(args.token)
    token = prompter.ask("Token", secret=True)
    if not token:
        raise UsageError("the token is missing: pass it, or `-` to read it from stdin")
    return token


# ---------------------------------------------------------------------------- commands


def publishable_key(args: argparse.Namespace, page_key: PageKey) -> str | None:
    """--publishable-key, else the environment's, else the local checkout page's (the demo
    merchant of `make run`); None: a stack that serves a single caller takes no key."""
    given = args.publishable_key or os.environ.get(PUBLISHABLE_KEY_ENV)
    if given:
        return str(given)
    if is_loopback(urlsplit(args.url).hostname or ""):
        return page_key(args.url, args.timeout)
    return None


def cmd_tokenize(api: CardTokensApi, args: argparse.Namespace, io: Console) -> int:
    card = read_card(args, io.prompter)
    issued = api.tokenize(card, publishable_key(args, io.page_key))
    if args.json:
        io.print_json(issued)
    elif args.quiet:
        io.out.write(f"{issued['token']}\n")
    else:
        io.out.write(describe_token(issued, io.now()) + "\n")
    return EXIT_OK


def outcome_unknown(error: Unreachable | ApiError) -> bool:
    """Whether a failed payment request may have charged the card."""
    if isinstance(error, Unreachable):
        return error.sent  # refused, or a name or TLS failure: the request never got out
    return error.status >= 500 and error.code not in NOTHING_CHARGED


def cmd_pay(api: CardTokensApi, args: argparse.Namespace, io: Console) -> int:
    token = read_token(args, io.prompter)
    key = args.idempotency_key or str(uuid.uuid4())
    try:
        payment = api.pay(token, args.amount, args.currency, args.reference, key)
    except (Unreachable, ApiError) as error:
        if outcome_unknown(error):
            # The payment may have gone through: the same key (and token) gets its result back.
            io.err.write(
                f"hint: retry with --idempotency-key {key} and the same token: it returns the "
                "payment if it was made, and never pays twice\n"
            )
        raise
    if args.json:
        io.print_json(payment)
    else:
        io.out.write(describe_payment(payment) + "\n")
    return EXIT_OK if payment.get("status") == "approved" else EXIT_DECLINED


def cmd_get(api: CardTokensApi, args: argparse.Namespace, io: Console) -> int:
    payment = api.get_payment(args.payment_id)
    if args.json:
        io.print_json(payment)
    else:
        io.out.write(describe_payment(payment) + "\n")
    return EXIT_OK


def cmd_jwks(api: CardTokensApi, args: argparse.Namespace, io: Console) -> int:
    jwks = api.jwks()
    if args.json:
        io.print_json(jwks)
    else:
        io.out.write(describe_jwks(jwks) + "\n")
    return EXIT_OK


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Console:
    """Where a command reads and writes, the clock, and how the checkout page's key is read."""

    out: TextIO
    err: TextIO
    prompter: Prompter
    now: Callable[[], datetime] = _utc_now
    page_key: PageKey = page_publishable_key

    def print_json(self, document: dict[str, Any]) -> None:
        self.out.write(json.dumps(document, indent=2) + "\n")


# ---------------------------------------------------------------------------- arguments


def minor_units(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("give the amount in minor units: 1999 for 19.99")
    return int(text)


def currency_code(text: str) -> str:
    """The code as given, once it is one the API takes; refused in the API's words otherwise."""
    if text in CURRENCIES:
        return text
    suggestion = f" Did you mean {text.upper()}?" if text.upper() in CURRENCIES else ""
    raise argparse.ArgumentTypeError(CURRENCY_RULE + suggestion)


Command = Callable[[CardTokensApi, argparse.Namespace, Console], int]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the command is not reset by the command's defaults.
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"the stack's base URL (default $CARD_TOKENS_URL or {DEFAULT_URL})",
    )
    common.add_argument(
        "--region",
        default=argparse.SUPPRESS,
        help="AWS region for SigV4 (default: from an execute-api URL, then AWS_REGION)",
    )
    common.add_argument(
        "--profile",
        default=argparse.SUPPRESS,
        help="AWS profile whose credentials sign payments (also on this machine: a local "
        "merchant's profile in .local-stack/credentials, with AWS_SHARED_CREDENTIALS_FILE)",
    )
    common.add_argument(
        "--no-sign",
        action="store_true",
        default=argparse.SUPPRESS,
        help="never SigV4-sign (for a deployed stack without IAM authorization)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON"
    )
    common.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS, help="seconds per request (30)"
    )

    parser = argparse.ArgumentParser(
        prog="card-tokens",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        parents=[common],
        epilog="Exit codes: 0 done, 1 API error or no answer, 2 bad usage, 3 payment declined.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Command, help: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=description)
        sub.set_defaults(run=run)
        return sub

    tokenize = command(
        "tokenize",
        cmd_tokenize,
        "turn a card into a single-use token",
        "POST /tokens. Missing card values are prompted for (hidden) or read from "
        "stdin, one a line: card number, expiry, security code. Prefer that to options, which "
        "shell history and `ps` can see.",
    )
    tokenize.add_argument("--card-number", metavar="NUMBER", help="e.g. '4242 4242 4242 4242'")
    tokenize.add_argument("--exp", metavar="MM/YY", help="expiry month and year")
    tokenize.add_argument("--cvv", metavar="CODE", help="the card security code")
    tokenize.add_argument("--name", metavar="NAME", help="cardholder name (optional)")
    tokenize.add_argument("-q", "--quiet", action="store_true", help="print only the token")
    tokenize.add_argument(
        "--publishable-key",
        metavar="KEY",
        help=f"the merchant's pk_... (default ${PUBLISHABLE_KEY_ENV}; on this machine, the local "
        "stack's demo merchant's, read from its checkout page)",
    )

    pay = command(
        "pay",
        cmd_pay,
        "pay once with a token",
        "POST /payments. Exit code 3 when the card is declined.",
    )
    pay.add_argument(
        "token", nargs="?", default="-", help="the token, or - (default) to read it from stdin"
    )
    pay.add_argument(
        "--amount",
        type=minor_units,
        required=True,
        help="minor units: 1999 is 19.99 EUR, 1999 JPY is 1999 yen",
    )
    pay.add_argument(
        "--currency",
        type=currency_code,
        required=True,
        help=f"ISO 4217 code in capitals, as the API takes it: {', '.join(CURRENCIES)} "
        "(eur is refused, as the API refuses it)",
    )
    pay.add_argument(
        "--reference", help="your order reference (optional): 1 to 64 printable characters"
    )
    pay.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="makes a retry safe (default: a new random key, printed when the outcome is unknown)",
    )

    get = command("get", cmd_get, "read a payment", "GET /payments/{id}.")
    get.add_argument("payment_id", help="pay_…")

    command(
        "jwks", cmd_jwks, "list the public keys that verify tokens", "GET /.well-known/jwks.json."
    )
    add_merchant_commands(commands)
    return parser


def unsigned(args: argparse.Namespace) -> bool:
    """--no-sign, or the local stack on this machine with no --profile: it takes unsigned
    requests as its demo merchant's; a profile signs as that local merchant."""
    local = is_loopback(urlsplit(args.url).hostname or "")
    return bool(args.no_sign) or (local and not args.profile)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    prompter: Prompter | None = None,
    api_factory: ApiFactory = CardTokensApi,
    aws_clients: ClientsFactory = AwsClients,
    page_key: PageKey = page_publishable_key,
) -> int:
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    for name, default in (
        ("url", os.environ.get("CARD_TOKENS_URL") or DEFAULT_URL),
        ("region", None),
        ("profile", None),
        ("no_sign", False),
        ("json", False),
        ("timeout", 30.0),
    ):
        if not hasattr(args, name):
            setattr(args, name, default)
    console = Console(out, err, prompter or Prompter(stdin, err), page_key=page_key)
    try:
        if args.command == "merchants":
            run_merchant_command(args, out, aws_clients)
            return EXIT_OK
        signer = None if unsigned(args) else RequestSigner(args.url, args.region, args.profile)
        api = api_factory(args.url, signer, args.timeout)
        code: int = args.run(api, args, console)
        return code
    except (UsageError, InvalidBaseUrl, InvalidMerchant) as error:
        err.write(f"card-tokens: error: {error}\n")
        return EXIT_USAGE
    except ApiError as error:
        err.write(f"card-tokens: error: {error.describe()}\n")
        return EXIT_ERROR
    except Unreachable as error:
        err.write(f"card-tokens: error: {error}\n")
        return EXIT_ERROR
    except (SigningError, RegistryError, RegistryUnavailable) as error:
        err.write(f"card-tokens: error: {error}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.write("\n")
        return 130
