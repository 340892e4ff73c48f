"""squall.checks."""
