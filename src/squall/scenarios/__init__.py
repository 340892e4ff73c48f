"""squall.scenarios."""
