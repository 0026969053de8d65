"""SigV4 for the payment routes of a deployed stack: which requests to sign, and in which region."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import BotoCoreError
from botocore.session import Session

SERVICE = "execute-api"
LOCAL_REGION = "us-east-1"  # the region `make run` emulates
# https://{api-id}.execute-api.{region}.amazonaws.com (or .amazonaws.com.cn)
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


@dataclass(frozen=True)
class SignedRoute:
    method: str
    path: str  # as template.yaml writes it: {name} stands for one path segment

    def matches(self, method: str, path: str) -> bool:
        wanted = self.path.split("/")
        asked = path.split("?", 1)[0].split("/")
        return (
            method.upper() == self.method
            and len(asked) == len(wanted)
            and all(
                part == mine or (mine.startswith("{") and mine.endswith("}") and part != "")
                for part, mine in zip(asked, wanted, strict=True)
            )
        )


# The routes template.yaml puts behind AWS_IAM (a unit test holds the two together): only these
# need AWS credentials. POST /tokens, the JWKS, and paths the API does not have are public.
SIGNED_ROUTES = (SignedRoute("POST", "/payments"), SignedRoute("GET", "/payments/{payment_id}"))


class SigningError(Exception):
    """No region or no credentials to sign with: the message says what to pass."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def region_from_host(host: str) -> str | None:
    """An execute-api host's region; the local stack's for this machine (whatever AWS_REGION
    says: the local gateway verifies signatures for its own region only)."""
    if is_loopback(host):
        return LOCAL_REGION
    match = _EXECUTE_API_HOST.fullmatch(host.lower())
    return match.group(1) if match else None


def needs_signature(method: str, path: str) -> bool:
    """Whether API Gateway wants this request SigV4-signed (`path` after the base URL)."""
    return any(route.matches(method, path) for route in SIGNED_ROUTES)


class RequestSigner:
    """Signs with `credentials`, else the default AWS credential chain (or --profile), resolved
    at the first use."""

    def __init__(
        self,
        base_url: str,
        region: str | None = None,
        profile: str | None = None,
        credentials: Credentials | None = None,
    ):
        self._base_url = base_url
        self._region = region
        self._profile = profile
        self._credentials: ReadOnlyCredentials | None = (
            None if credentials is None else credentials.get_frozen_credentials()
        )

    def region(self) -> str:
        host = urlsplit(self._base_url).hostname or ""
        region = self._region or region_from_host(host) or os.environ.get("AWS_REGION")
        if not region:
            try:
                region = self._session().get_config_variable("region")  # AWS_DEFAULT_REGION too
            except BotoCoreError as error:  # e.g. a --profile that does not exist
                raise SigningError(str(error)) from None
        if not region:
            raise SigningError(
                f"cannot tell the AWS region of {host}: pass --region (payments are SigV4-signed)"
            )
        return str(region)

    def sign(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, str]:
        """The headers to send: `headers` plus Authorization, X-Amz-Date (and the session token)."""
        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        SigV4Auth(self._frozen_credentials(), SERVICE, self.region()).add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}

    def _session(self) -> Session:
        return Session(profile=self._profile)

    def _frozen_credentials(self) -> ReadOnlyCredentials:
        if self._credentials is None:
            try:
                credentials = self._session().get_credentials()
            except BotoCoreError as error:
                raise SigningError(f"cannot load AWS credentials: {error}") from None
            if credentials is None:
                raise SigningError(
                    "no AWS credentials to sign the payment request with: configure a profile "
                    "(--profile, AWS_PROFILE) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                    "or pass --no-sign if this stack does not require IAM authorization"
                )
            self._credentials = credentials.get_frozen_credentials()
        return self._credentials
