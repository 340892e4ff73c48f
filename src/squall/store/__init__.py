"""squall.store."""
