"""Printable text: the rule for the free-text fields (cardholder_name, reference), as a table.

Refused: control characters (Cc), format characters (Cf: bidi overrides, zero-width spaces, the
byte order mark...), every separator but the ASCII space (Zs, Zl, Zp), private use (Co) and
surrogates (Cs). That is what `str.isprintable()` refuses, with one difference: an unassigned
code point passes, because a pattern could refuse those only by listing some 700 ranges. The
table is written out, rather than asking `str.isprintable()`, so that openapi.yaml can state the
same rule as a pattern (printable_text_pattern) and the rule does not move with Python's Unicode
version. tests/unit/test_printable.py checks it against `str.isprintable()` over every assigned
code point, and against openapi.yaml.
"""

from __future__ import annotations

import re

# Inclusive code point ranges (Unicode 15.1), merged across gaps of unassigned code points.
REFUSED_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F),  # C0 controls
    (0x007F, 0x00A0),  # DEL, C1 controls, no-break space
    (0x00AD, 0x00AD),  # soft hyphen
    (0x0600, 0x0605),
    (0x061C, 0x061C),  # Arabic letter mark
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x1680, 0x1680),  # Ogham space mark
    (0x180E, 0x180E),  # Mongolian vowel separator
    (0x2000, 0x200F),  # spaces, zero-width characters, LRM/RLM
    (0x2028, 0x202F),  # line and paragraph separators, bidi embeddings and overrides
    (0x205F, 0x206F),  # medium mathematical space, word joiner, bidi isolates
    (0x3000, 0x3000),  # ideographic space
    (0xD800, 0xDFFF),  # surrogates
    (0xE000, 0xF8FF),  # private use
    (0xFEFF, 0xFEFF),  # byte order mark
    (0xFFF9, 0xFFFB),  # interlinear annotation
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),  # Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0001, 0xE007F),  # tag characters
    (0xF0000, 0x10FFFD),  # supplementary private use
)
SURROGATES = (0xD800, 0xDFFF)


def _escape(code_point: int) -> str:
    """\\xhh and \\uhhhh, which Python's re, ECMA-262 and the Rust regex crate all read; above the
    BMP the character itself, as ECMA-262 has no \\U (openapi.yaml spells it as a YAML escape)."""
    if code_point <= 0xFF:
        return f"\\x{code_point:02x}"
    if code_point <= 0xFFFF:
        return f"\\u{code_point:04x}"
    return chr(code_point)


def _negated_class(ranges: tuple[tuple[int, int], ...]) -> str:
    parts = []
    for low, high in ranges:
        parts.append(_escape(low) if low == high else f"{_escape(low)}-{_escape(high)}")
    return "[^" + "".join(parts) + "]"


# One printable character as the contract spells it (openapi.yaml). It leaves the surrogates
# out: a JSON Schema validator that reads UTF-8 (jsonschema-rs, which schemathesis uses) cannot
# name them in a pattern, nor hold them in a string. The code refuses them as well.
PRINTABLE_CHARACTER = _negated_class(tuple(r for r in REFUSED_RANGES if r != SURROGATES))
_PRINTABLE_TEXT = re.compile(_negated_class(REFUSED_RANGES) + "*")


def printable_text_pattern(min_length: int, max_length: int) -> str:
    """openapi.yaml's `pattern` for printable text of min_length to max_length characters.

    The lengths are in the pattern, not in minLength/maxLength: schemathesis folds those into the
    pattern itself, and spells the characters above the BMP as \\U escapes, which its own check
    of the pattern (ECMA-262) then refuses.
    """
    return f"^{PRINTABLE_CHARACTER}{{{min_length},{max_length}}}$"


def is_printable_text(text: str) -> bool:
    """True when no character of `text` is in REFUSED_RANGES (the empty string is printable)."""
    return _PRINTABLE_TEXT.fullmatch(text) is not None
