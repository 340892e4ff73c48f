"""How squall speaks to a target: the reference protocol and other adapters."""
