"""Where the scenarios find the target and how they sign in to it."""

from __future__ import annotations

from dataclasses import dataclass

from squall.engine.identity import IdentityFactory, anonymous_identities, jwt_identities


@dataclass(frozen=True)
class TargetInfo:
    """A running target, spoken to through the adapter named ``adapter``."""

    ws_url: str
    http_url: str
    jwt_secret: str
    issuer: str = "squall"
    audience: str = "squall-platform"
    #: PIDs of the target's processes when known (squall started it, or --target-pid).
    pids: tuple[int, ...] = ()
    #: The protocol adapter (``squall.adapters.registry``); "squall" is the reference protocol.
    adapter: str = "squall"

    def identities(self, prefix: str) -> IdentityFactory:
        """Users ``<prefix>-<index>`` with tokens the target accepts (none without a secret)."""
        if not self.jwt_secret:
            return anonymous_identities(prefix)
        return jwt_identities(self.jwt_secret, self.issuer, self.audience, prefix)


def scaled(count: int, scale: float) -> int:
    """``count`` multiplied by ``scale``, at least 1."""
    return max(1, round(count * scale))
