"""The printable-text table against str.isprintable(), and the contract's spelling of it."""

from __future__ import annotations

import itertools
import re
import sys
import unicodedata

import pytest

from card_tokens.printable import (
    REFUSED_RANGES,
    SURROGATES,
    is_printable_text,
    printable_text_pattern,
)


def refused_by_the_table(code_point: int) -> bool:
    return any(low <= code_point <= high for low, high in REFUSED_RANGES)


@pytest.mark.skipif(
    unicodedata.unidata_version != "15.1.0",
    reason=f"the table is Unicode 15.1's; Python {sys.version_info[:2]} has "
    f"{unicodedata.unidata_version}: compare, then update REFUSED_RANGES",
)
def test_the_table_refuses_exactly_what_isprintable_refuses_among_assigned_code_points() -> None:
    disagreements = [
        f"U+{code_point:04X}"
        for code_point in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code_point)) != "Cn"
        and refused_by_the_table(code_point) == chr(code_point).isprintable()
    ]
    assert disagreements == []


def test_the_ranges_are_sorted_and_apart() -> None:
    for (_, high), (low, _) in itertools.pairwise(REFUSED_RANGES):
        assert high < low


@pytest.mark.parametrize(
    "code_point", [0x00, 0x1F, 0x7F, 0xA0, 0x200B, 0x202E, 0xD800, 0xDFFF, 0xE000, 0xE0041]
)
def test_each_refused_range_refuses_text_holding_it(code_point: int) -> None:
    assert not is_printable_text(f"a{chr(code_point)}b")


def test_the_contract_pattern_is_the_table_without_the_surrogates() -> None:
    # Python's re and the Rust regex crate (jsonschema-rs) both read it: \xhh, \uhhhh, and the
    # characters above the BMP themselves.
    contract = re.compile(printable_text_pattern(1, 1))
    for code_point in range(sys.maxunicode + 1):
        if SURROGATES[0] <= code_point <= SURROGATES[1]:
            continue
        character = chr(code_point)
        assert (contract.fullmatch(character) is not None) == is_printable_text(character), (
            f"U+{code_point:04X}"
        )
