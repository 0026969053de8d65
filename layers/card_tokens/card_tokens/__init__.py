"""Card tokens: the shared layer behind issue_token, process_payment and the key rotation."""
