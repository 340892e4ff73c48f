"""squall.report."""
