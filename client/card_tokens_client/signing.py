"""SigV4 for the payment routes of a deployed stack: which requests to sign, and in which region."""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError
from botocore.session import Session

SERVICE = "execute-api"
# https://{api-id}.execute-api.{region}.amazonaws.com (or .amazonaws.com.cn)
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
# Only these routes need AWS credentials; POST /tokens and the JWKS are public.
SIGNED_PATH_PREFIX = "/payments"


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
    match = _EXECUTE_API_HOST.fullmatch(host.lower())
    return match.group(1) if match else None


def needs_signature(base_url: str, path: str) -> bool:
    """Payment routes of anything but this machine (the local stack takes unsigned requests)."""
    host = urlsplit(base_url).hostname or ""
    return path.startswith(SIGNED_PATH_PREFIX) and not is_loopback(host)


class RequestSigner:
    """Signs with the default AWS credential chain (or --profile), resolved at the first use."""

    def __init__(self, base_url: str, region: str | None = None, profile: str | None = None):
        self._base_url = base_url
        self._region = region
        self._profile = profile
        self._credentials: ReadOnlyCredentials | None = None

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
