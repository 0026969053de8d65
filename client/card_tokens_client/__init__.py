"""card-tokens: a command-line client for the card-tokens API (local stack or a deployed stack)."""

__all__ = ["__version__"]
__version__ = "0.1.0"
