"""Card tokens: the shared layer behind issue_token, process_payment and the key rotation.

Use cases on top (issuing, payments, reconciliation, key_rotation), built by one composition
root (wiring); pure code at the bottom (the formats, the key maths, the rules); the AWS I/O in
the adapters named below, and nowhere else (tests/unit/test_layering.py holds both lists true).
"""

# The only modules that import boto3, botocore or Powertools' parameters utility (which imports
# boto3), or open connections of their own (forwarding_processor.py, stripe_processor.py:
# network I/O to a processor). processor.py also holds the PaymentProcessor port, beside its
# sandbox adapter, and key_rotation.py is a use case that speaks Secrets Manager's rotation
# protocol itself.
ADAPTERS = (
    "aws",
    "aws_errors",
    "forwarding_processor",
    "key_rotation",
    "key_store",
    "kms_data_keys",
    "merchant_directory",
    "processor",
    "stores",
    "stripe_processor",
)
# Importable with no AWS SDK at all: a verifier can take tokens and the formats without boto3.
PURE = (
    "b64url",
    "cards",
    "config",
    "cors",
    "errors",
    "forwarding",
    "merchants",
    "printable",
    "records",
    "request_body",
    "sealing",
    "signing_keys",
    "strict_json",
    "tokens",
)
