"""The publishable key a stack's checkout page is configured with.

`make run` registers a demo merchant and serves its checkout page with the key in a meta tag:
reading it back lets the CLI (and `make events`) tokenize as that merchant with no extra step.
A deployed stack's key is the operator's to hand out: pass it (--publishable-key).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

PUBLISHABLE_KEY_META = re.compile(
    r'<meta name="card-tokens-publishable-key" content="(pk_[a-z2-7]{24})">'
)


def key_in_page(html: str) -> str | None:
    found = PUBLISHABLE_KEY_META.search(html)
    return found.group(1) if found else None


def page_publishable_key(
    base_url: str,
    timeout: float = 15.0,
    open_url: Callable[..., Any] = urllib.request.urlopen,
) -> str | None:
    """The key of the checkout page at `base_url`/, or None: no page, or a page of a stack that
    serves a single caller (no merchants registered)."""
    try:
        with open_url(base_url.rstrip("/") + "/", timeout=timeout) as response:
            return key_in_page(response.read().decode("utf-8", errors="replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None
