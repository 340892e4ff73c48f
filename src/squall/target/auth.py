"""JWT authentication: who a request or socket belongs to, and minting tokens for dev use.

Tokens are verified with HS256 (a shared secret) or RS256 (a PEM public key);
``exp``, ``iss``, ``aud``, ``sub`` and ``role`` are all required. Pure apart from
reading the key files once when an :class:`Authenticator` is built.
"""

from __future__ import annotations

import contextlib
import enum
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from squall.target.ids import UserID, text_problem
from squall.target.settings import DEV_JWT_SECRET, Settings, SettingsError

BEARER_SUBPROTOCOL = "bearer"
MAX_USER_ID_CHARS = 128


class Role(enum.Enum):
    USER = "user"
    ADMIN = "admin"


class KeyFileError(SettingsError):
    """A key file the settings name cannot be read, or holds no RSA key of the kind needed."""


def read_key(path: str, variable: str, *, private: bool) -> str:
    """The PEM text of the RSA key in ``path`` (named by the setting ``variable``), checked
    to be a key of the kind needed, so a wrong file is named at start-up rather than failing
    every token."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

    kind = "private" if private else "public"
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise KeyFileError(
            f"{variable}={path!r}: cannot read it ({why}); point it at a PEM RSA {kind} key"
        ) from None
    try:
        key = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).prepare_key(text)
    except TypeError:  # cryptography: a private key encrypted, and no password given
        fix = (
            f"decrypt it first (openssl pkey -in {path} -out <new file>)"
            if private
            else f"it needs the public one (openssl pkey -in {path} -pubout)"
        )
        raise KeyFileError(f"{variable}={path!r} holds an encrypted private key; {fix}") from None
    except (jwt.InvalidKeyError, ValueError):
        # PyJWT's own words name a public key whatever was read, or show a generator.
        raise KeyFileError(
            f"{variable}={path!r} holds no RSA key in PEM form (an EC or Ed25519 key, a "
            f"certificate or any other file does not do); point it at a PEM RSA {kind} key"
        ) from None
    if not isinstance(key, RSAPrivateKey if private else RSAPublicKey):
        other = "public" if private else "private"
        raise KeyFileError(f"{variable}={path!r} holds an RSA {other} key; it needs the {kind} one")
    return text


class Unauthorized(Exception):
    """A token is missing, malformed, expired or for another issuer/audience (401, WS 4401)."""


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UserID
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True)
class Credentials:
    """A token found in a handshake and, when it came in ``Sec-WebSocket-Protocol``, the
    subprotocol to select: ``bearer`` as the client spelled it (RFC 6455: the server picks
    one of the values offered, and a client may refuse any other)."""

    token: str
    subprotocol: str | None = None


def find_token(headers: Iterable[tuple[bytes, bytes]]) -> Credentials | None:
    """The bearer token of an ASGI header list: ``Authorization`` first, then the subprotocol."""
    subprotocol: Credentials | None = None
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1").strip()
        if name == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return Credentials(token=token.strip())
        elif name == "sec-websocket-protocol" and subprotocol is None:
            parts = [p.strip() for p in value.split(",")]
            if len(parts) >= 2 and parts[0].lower() == BEARER_SUBPROTOCOL and parts[1]:
                subprotocol = Credentials(token=parts[1], subprotocol=parts[0])
    return subprotocol


class Authenticator:
    """Verifies tokens against one key, issuer and audience."""

    def __init__(self, settings: Settings) -> None:
        self._algorithm = settings.jwt_algorithm
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        if settings.jwt_algorithm == "RS256":
            self._key: str = read_key(
                settings.jwt_public_key_file, "SQUALL_JWT_PUBLIC_KEY_FILE", private=False
            )
        else:
            self._key = settings.jwt_secret

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized(
                "no bearer token: send 'Authorization: Bearer <token>' or the "
                "'Sec-WebSocket-Protocol: bearer, <token>' header"
            )
        try:
            with _dev_secret_quiet(self._key):
                claims = jwt.decode(
                    token,
                    self._key,
                    algorithms=[self._algorithm],
                    audience=self._audience,
                    issuer=self._issuer,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"token rejected: {exc}") from None
        return principal_from_claims(claims)


def user_id_problem(value: object) -> str | None:
    """Why ``value`` cannot be a user id (a clause: "is …; expected …"), or None: a user id
    is 1 to 128 characters that text can hold (:func:`~squall.target.ids.text_problem`)."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_USER_ID_CHARS:
        shown = f"{len(value)} characters long" if isinstance(value, str) else repr(value)
        return f"is {shown}; expected 1 to {MAX_USER_ID_CHARS} characters"
    what = text_problem(value)
    if what is not None:
        return f"holds {what}; expected 1 to {MAX_USER_ID_CHARS} characters without it"
    return None


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Check ``sub`` and ``role`` of already signature-checked claims."""
    sub = claims.get("sub")
    problem = user_id_problem(sub)
    if problem is not None or not isinstance(sub, str):
        raise Unauthorized(f"token 'sub' {problem}")
    raw_role = claims.get("role", Role.USER.value)
    try:
        role = Role(raw_role)
    except ValueError:
        raise Unauthorized(f"token 'role' is {raw_role!r}; expected 'user' or 'admin'") from None
    return Principal(user_id=UserID(sub), role=role)


def mint_token(
    settings: Settings,
    user_id: str,
    *,
    role: Role = Role.USER,
    ttl_s: float = 3600.0,
    now: float | None = None,
) -> str:
    """A token the platform configured by ``settings`` accepts (dev helper and tests).

    Raises ValueError for a user id the platform would refuse, and :class:`KeyFileError`
    when RS256 has no usable private key.
    """
    problem = user_id_problem(user_id)
    if problem is not None:
        raise ValueError(f"user id {user_id!r:.140} {problem}, as the platform accepts")
    issued = time.time() if now is None else now
    claims = {
        "sub": user_id,
        "role": role.value,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(issued),
        "exp": int(issued + ttl_s),
    }
    if settings.jwt_algorithm == "RS256":
        if not settings.jwt_private_key_file:
            raise KeyFileError(
                "minting RS256 tokens needs SQUALL_JWT_PRIVATE_KEY_FILE (a PEM private key)"
            )
        key = read_key(settings.jwt_private_key_file, "SQUALL_JWT_PRIVATE_KEY_FILE", private=True)
    else:
        key = settings.jwt_secret
    with _dev_secret_quiet(key):
        return jwt.encode(claims, key, algorithm=settings.jwt_algorithm)


@contextlib.contextmanager
def _dev_secret_quiet(key: str) -> Iterator[None]:
    """Silence PyJWT's short-key warning for the built-in dev secret only.

    The dev secret is public by design (it is in the source); warning about its
    length on every request adds noise, not safety. Any other short key still warns.
    """
    with warnings.catch_warnings():
        if key == DEV_JWT_SECRET:
            warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        yield
