"""Who each virtual user is: a typed user id, an optional bearer token, and its index.

Identity factories are picklable callables (index → :class:`Identity`) so that
worker processes can build the identities of their own users.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import NewType, Protocol

import jwt

UserID = NewType("UserID", str)


@dataclass(frozen=True)
class Identity:
    """A virtual user's identity. ``token`` is sent as ``Authorization: Bearer``."""

    user_id: UserID
    token: str | None
    index: int

    def auth_headers(self) -> dict[str, str]:
        """The ``Authorization`` header for this identity, or nothing if it has no token."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


class IdentityFactory(Protocol):
    def __call__(self, index: int) -> Identity: ...


@dataclass(frozen=True)
class AnonymousIdentities:
    """Identities without tokens: ``<prefix>-<index>``."""

    prefix: str = "user"

    def __call__(self, index: int) -> Identity:
        return Identity(UserID(f"{self.prefix}-{index}"), None, index)


#: The JWT signing algorithms identities can mint with: a shared secret, or an RSA key.
JWT_ALGORITHMS = ("HS256", "RS256")


@dataclass(frozen=True)
class JwtIdentities:
    """Identities with JWTs carrying ``sub``, ``role``, ``iat``, ``exp``, ``iss``, ``aud``.

    ``secret`` is the signing key: the shared secret for HS256, the PEM text of an RSA
    private key for RS256. It is the target's key, whatever its length: PyJWT's warning
    about a short HS256 key is the target's concern, not the load generator's, and is not
    printed.
    """

    secret: str
    issuer: str = "squall"
    audience: str = "squall-platform"
    prefix: str = "user"
    role: str = "user"
    ttl_s: float = 3600.0
    #: Wall clock used for ``iat``/``exp`` (injectable for tests).
    now: Callable[[], float] = time.time
    algorithm: str = "HS256"

    def __call__(self, index: int) -> Identity:
        user_id = UserID(f"{self.prefix}-{index}")
        issued = int(self.now())
        claims = {
            "sub": user_id,
            "role": self.role,
            "iat": issued,
            "exp": issued + int(self.ttl_s),
            "iss": self.issuer,
            "aud": self.audience,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
            token = jwt.encode(claims, self.secret, algorithm=self.algorithm)
        return Identity(user_id, token, index)


def anonymous_identities(prefix: str = "user") -> AnonymousIdentities:
    return AnonymousIdentities(prefix)


def jwt_identities(
    secret: str,
    issuer: str = "squall",
    audience: str = "squall-platform",
    prefix: str = "user",
    *,
    role: str = "user",
    ttl_s: float = 3600.0,
    algorithm: str = "HS256",
) -> JwtIdentities:
    """A factory minting one token per virtual user, signed with ``secret`` (HS256), or with
    the RSA private key whose PEM text it is (``algorithm="RS256"``)."""
    if not secret:
        raise ValueError(
            "jwt_identities() needs a non-empty secret: pass the HMAC secret the target verifies"
        )
    if algorithm not in JWT_ALGORITHMS:
        raise ValueError(
            f"jwt_identities(algorithm={algorithm!r}): expected one of {', '.join(JWT_ALGORITHMS)}"
        )
    factory = JwtIdentities(secret, issuer, audience, prefix, role, ttl_s, algorithm=algorithm)
    try:
        factory(0)  # a key PyJWT cannot sign with fails here, not in every user
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        needs = "the PEM text of an RSA private key" if algorithm == "RS256" else "a text secret"
        raise ValueError(
            f"jwt_identities(algorithm={algorithm!r}) cannot sign with the secret given "
            f"({type(exc).__name__}: {exc}); pass {needs}"
        ) from None
    return factory
