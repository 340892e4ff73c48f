"""squall.metrics."""
