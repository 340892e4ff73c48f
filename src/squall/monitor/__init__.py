"""squall.monitor."""
