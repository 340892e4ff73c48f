"""squall: high-load performance and race-condition testing for real-time backends."""

__version__ = "0.1.0"
