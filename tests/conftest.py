"""Settings every test process shares before the layer is first imported."""

from __future__ import annotations

import os

# Powertools reads these when card_tokens.observability is imported, which the first unit test
# does; the values are template.yaml's Globals.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "card-tokens")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CardTokens")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
