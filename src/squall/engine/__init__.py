"""squall.engine."""
