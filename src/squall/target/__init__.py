"""squall.target."""
