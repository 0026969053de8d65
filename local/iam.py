"""The local stack's stand-in for IAM on the AWS_IAM routes: local users, their keys, SigV4.

Each local merchant gets a local IAM user: an access key pair in an AWS shared credentials file
(one profile per user, the profile named as the user), so botocore, the CLI and the tests sign
with `--profile`/AWS_SHARED_CREDENTIALS_FILE as they would on AWS. The gateway verifies a
signed request against that file, as API Gateway does for AWS_IAM, and names the signer in
requestContext.identity. The file is read at each signed request, so a merchant added while the
stack runs (tests) signs at once.
"""

from __future__ import annotations

import configparser
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.intrinsics import ACCOUNT_ID

SERVICE = "execute-api"
# API Gateway refuses a signature dated further than this from its clock (replay window).
MAX_CLOCK_SKEW = timedelta(minutes=5)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request, ?SignedHeaders=(?P<headers>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_USER_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)

# API Gateway's own messages for a refused signature (403, its {"message": ...} shape).
INCOMPLETE_SIGNATURE = (
    "Authorization header requires 'Credential', 'Signature', 'SignedHeaders' and 'X-Amz-Date' "
    "(AWS4-HMAC-SHA256)."
)
UNKNOWN_KEY = "The security token included in the request is invalid."
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
EXPIRED_SIGNATURE = "Signature expired: the request's X-Amz-Date is more than 5 minutes away."


@dataclass(frozen=True)
class LocalUser:
    """A local IAM user and its one access key."""

    name: str
    access_key_id: str
    secret_access_key: str

    @property
    def arn(self) -> str:
        return user_arn(self.name)

    @property
    def user_id(self) -> str:
        """A stable unique id in IAM's form (AIDA…), what API Gateway puts in `caller`."""
        digest = hashlib.sha256(self.name.encode()).digest()
        return "AIDA" + "".join(_KEY_ALPHABET[byte % 32] for byte in digest[:16])

    def __repr__(self) -> str:  # never the secret
        return f"LocalUser({self.name!r}, {self.access_key_id!r})"


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"


def new_local_user(name: str) -> LocalUser:
    if not _USER_NAME.fullmatch(name):
        raise ValueError(f"not an IAM user name: {name!r}")
    key_id = "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    return LocalUser(name, key_id, secrets.token_urlsafe(30)[:40])


@dataclass(frozen=True)
class Caller:
    """Who signed a request, as API Gateway's requestContext.identity names them."""

    user_arn: str
    user_id: str
    access_key: str | None

    def identity(self) -> dict[str, str | None]:
        return {
            "accountId": ACCOUNT_ID,
            "caller": self.user_id,
            "user": self.user_id,
            "userArn": self.user_arn,
            "accessKey": self.access_key,
        }


def caller_of(user: LocalUser, *, signed: bool = True) -> Caller:
    return Caller(user.arn, user.user_id, user.access_key_id if signed else None)


class SignatureRefused(Exception):
    """API Gateway's 403: the message is its own, and names no key or secret."""


class CredentialsFile:
    """An AWS shared credentials file holding the local users, one profile each."""

    _lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path

    def users(self) -> dict[str, LocalUser]:
        """Access key id → user."""
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(self.path, encoding="utf-8")
        found = {}
        for name in parser.sections():
            section = parser[name]
            if "aws_access_key_id" in section and "aws_secret_access_key" in section:
                user = LocalUser(
                    name, section["aws_access_key_id"], section["aws_secret_access_key"]
                )
                found[user.access_key_id] = user
        return found

    def user(self, name: str) -> LocalUser | None:
        return next((user for user in self.users().values() if user.name == name), None)

    def ensure(self, name: str) -> LocalUser:
        """The user of that name, created (and written) if the file does not have it."""
        user = self.user(name)
        if user is None:
            user = new_local_user(name)
            self.add(user)
        return user

    def add(self, user: LocalUser) -> None:
        """Write (or replace) the user's profile; the file is replaced whole, owner-only."""
        with self._lock:
            parser = configparser.ConfigParser(interpolation=None)
            parser.read(self.path, encoding="utf-8")
            parser[user.name] = {
                "aws_access_key_id": user.access_key_id,
                "aws_secret_access_key": user.secret_access_key,
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".credentials")
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                parser.write(stream)
            os.replace(temporary, self.path)


def verify_signature(
    *,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | None,
    users: Mapping[str, LocalUser],
    region: str,
    now: datetime | None = None,
) -> Caller:
    """The signer of a SigV4 request (header form), or SignatureRefused as API Gateway would.

    The signature is computed again with botocore from the signed headers and the secret of the
    key named in the Credential scope, and compared in constant time.
    """
    received = _header_map(headers)
    match = _AUTHORIZATION.fullmatch(received.get("authorization", "").strip())
    amz_date = received.get("x-amz-date", "")
    if match is None or not amz_date:
        raise SignatureRefused(INCOMPLETE_SIGNATURE)
    user = users.get(match["key"])
    if user is None:
        raise SignatureRefused(UNKNOWN_KEY)
    try:
        signed_at = datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRefused(INCOMPLETE_SIGNATURE) from None
    if abs((now or datetime.now(UTC)) - signed_at) > MAX_CLOCK_SKEW:
        raise SignatureRefused(EXPIRED_SIGNATURE)
    if (match["date"], match["region"], match["service"]) != (amz_date[:8], region, SERVICE):
        raise SignatureRefused(BAD_SIGNATURE)
    signed_names = match["headers"].split(";")
    if any(name not in received for name in signed_names):
        raise SignatureRefused(BAD_SIGNATURE)
    request = AWSRequest(
        method=method,
        url=f"http://{received.get('host', '')}{target}",
        data=body or b"",
        headers={name: received[name] for name in signed_names},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(user.access_key_id, user.secret_access_key), SERVICE, region)
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureRefused(BAD_SIGNATURE)
    return caller_of(user)


def _header_map(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined as SigV4 canonicalizes them."""
    joined: dict[str, list[str]] = {}
    for name, value in headers:
        joined.setdefault(name.lower(), []).append(" ".join(value.split()))
    return {name: ",".join(values) for name, values in joined.items()}


class IamAuthorizer:
    """AWS_IAM as the local gateway applies it: a signed request must verify; an unsigned one is
    the default user's (the demo merchant: a local-only convenience, so curl works unsigned),
    or anonymous when there is none."""

    def __init__(self, credentials: CredentialsFile, region: str, default_user: str | None) -> None:
        self.credentials = credentials
        self.region = region
        self.default_user = default_user

    def __call__(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes | None
    ) -> Caller | None:
        if not any(name.lower() == "authorization" for name, _ in headers):
            user = self.credentials.user(self.default_user) if self.default_user else None
            return None if user is None else caller_of(user, signed=False)
        return verify_signature(
            method=method,
            target=target,
            headers=headers,
            body=body,
            users=self.credentials.users(),
            region=self.region,
        )
