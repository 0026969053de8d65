"""`python -m card_tokens_client`: the same as the `card-tokens` command."""

import sys

from card_tokens_client.cli import main

sys.exit(main())
