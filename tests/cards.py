"""The test cards of every suite: the sandbox processor approves VISA and declines DECLINED_VISA."""

from __future__ import annotations

from typing import Any

from card_tokens_client.api import CardInput
from local.sample_card import SAMPLE_CARD

VISA: dict[str, Any] = dict(SAMPLE_CARD)
DECLINED_VISA: dict[str, Any] = {**VISA, "card_number": "4000 0000 0000 0002"}
VISA_INPUT = CardInput(**VISA)
CARDHOLDER: str = VISA["cardholder_name"]
# The card numbers a leak scan looks for, in the digits-only form.
TEST_PANS = tuple(str(card["card_number"]).replace(" ", "") for card in (VISA, DECLINED_VISA))
