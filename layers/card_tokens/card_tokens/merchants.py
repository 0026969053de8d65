"""Merchants: who may tokenize for whom (a publishable key) and who may pay for whom (an IAM
principal). Pure: the registry itself is an adapter behind `MerchantDirectory`.

A deployment with no merchant registered serves one caller, as before merchants existed: tokens
carry no merchant and any caller allowed by IAM may pay. Once one merchant is registered, every
token names its merchant and only that merchant's principals may redeem it or read its payments.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Protocol

# Random and not secret (it is in the checkout page), but rotatable: 120 bits, base32.
PUBLISHABLE_KEY = re.compile(r"pk_[a-z2-7]{24}", re.ASCII)
MERCHANT_ID = re.compile(r"mer_[a-z2-7]{16}", re.ASCII)
_ASSUMED_ROLE = re.compile(r"arn:(aws[\w-]*):sts::(\d{12}):assumed-role/([\w+=,.@-]+)/[^/]+")
_ROLE = re.compile(r"arn:(aws[\w-]*):iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)")
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


def _random_base32(length: int) -> str:
    return "".join(secrets.choice(_BASE32) for _ in range(length))


def new_publishable_key() -> str:
    return "pk_" + _random_base32(24)


def new_merchant_id() -> str:
    return "mer_" + _random_base32(16)


def principal_of(arn: str) -> str:
    """The principal a registry entry names for a caller ARN. A role's sessions
    (`…:sts::…:assumed-role/Name/session`) and the role itself (`…:iam::…:role/path/Name`) are one
    principal, `arn:aws:iam::<account>:role/Name`, since the assumed-role ARN carries no path.
    Users and anything else are compared as written."""
    for pattern in (_ASSUMED_ROLE, _ROLE):
        match = pattern.fullmatch(arn)
        if match:
            partition, account, name = match.groups()
            return f"arn:{partition}:iam::{account}:role/{name}"
    return arn


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    name: str
    publishable_key: str
    origins: tuple[str, ...]  # the checkout origins allowed to tokenize with its key
    principals: tuple[str, ...]  # principal_of() form: the IAM principals that pay for it

    def allows_origin(self, origin: str | None) -> bool:
        """No Origin is a server-side caller (no browser to protect); a browser must match."""
        return origin is None or origin in self.origins


class MerchantDirectory(Protocol):
    """Read side of the registry, as the functions see it (cached: see its adapter)."""

    def by_publishable_key(self, publishable_key: str) -> Merchant | None: ...

    def by_principal(self, principal_arn: str) -> Merchant | None: ...

    def is_empty(self) -> bool:
        """No merchant is registered: the deployment serves a single caller."""
        ...


@dataclass(frozen=True)
class Caller:
    """Who calls /payments: the IAM principal API Gateway authenticated (SigV4), if any."""

    principal_arn: str | None = None


def merchant_matches(directory: MerchantDirectory, caller: Caller, merchant_id: str | None) -> bool:
    """May this caller act for the object's merchant (None: an object of single-caller mode)?

    Only its own merchant's principals may, and an object with no merchant only while no
    merchant is registered (an unregistered caller then is the single caller).
    """
    mine = directory.by_principal(caller.principal_arn) if caller.principal_arn else None
    if (mine.merchant_id if mine else None) != merchant_id:
        return False
    return merchant_id is not None or directory.is_empty()
