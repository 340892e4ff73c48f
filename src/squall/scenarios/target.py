"""Where the scenarios find the target and how they sign in to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jwt

from squall.adapters.registry import DEFAULT_ADAPTER
from squall.config import ConfigError, TargetConfig
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
    #: How tokens are signed: HS256 with ``jwt_secret`` as the shared secret, or RS256 with
    #: ``jwt_secret`` as the PEM text of the RSA private key.
    jwt_algorithm: str = "HS256"

    def identities(self, prefix: str) -> IdentityFactory:
        """Users ``<prefix>-<index>`` with tokens the target accepts (none without a secret)."""
        if not self.jwt_secret:
            return anonymous_identities(prefix)
        return jwt_identities(
            self.jwt_secret, self.issuer, self.audience, prefix, algorithm=self.jwt_algorithm
        )


@dataclass(frozen=True)
class Signing:
    """How tokens for a target are signed: ``key`` (None: no tokens) with ``algorithm``."""

    key: str | None
    algorithm: str = "HS256"


def lacks_signing_key(target: TargetConfig, authenticates: bool, signer: Signing) -> bool:
    """Whether ``target`` is a running target (``url`` set) whose adapter authenticates
    (``authenticates``) while ``signer`` has no key: every socket would be refused."""
    return target.url is not None and authenticates and not signer.key


def missing_signing_key(prefix: str = "--") -> str:
    """What to do when :func:`lacks_signing_key` holds; ``prefix`` of the options
    (``--squall-`` in the pytest plugin)."""
    return (
        f"{prefix}target needs the secret the target verifies tokens with; pass "
        f"{prefix}jwt-secret or {prefix}jwt-secret-file, or set [target] jwt_secret, "
        "jwt_secret_file or jwt_private_key_file (RS256)"
    )


def adapter_without_target(target: TargetConfig, *, option: str = "--target") -> str | None:
    """Why ``target`` names an adapter squall cannot speak to anything: one other than the
    reference protocol's without a running target (``url``, given as ``option``), when squall
    starts its reference platform, which speaks only its own. None when there is no such
    problem."""
    if target.url is not None or target.adapter == DEFAULT_ADAPTER:
        return None
    return (
        f"adapter {target.adapter!r} needs {option}: without it squall starts its reference "
        f"platform, which speaks {DEFAULT_ADAPTER!r}"
    )


def signing(
    target: TargetConfig,
    secret: str | None = None,
    secret_file: Path | None = None,
    *,
    option: str = "--jwt-secret",
) -> Signing:
    """The signing key for ``target``: the command line's ``secret`` or ``secret_file`` first,
    then ``[target]`` ``jwt_secret_file``, ``jwt_secret`` or ``jwt_private_key_file`` (RS256).

    Raises :class:`ConfigError` for both command-line options at once or an empty secret
    (named as ``option`` and ``option-file``), a file that cannot be read, an empty secret
    file, and a private key that cannot sign an RS256 token.
    """
    if secret is not None and secret_file is not None:
        raise ConfigError(f"{option} and {option}-file are both given; pass one of them")
    if secret is not None:
        if not secret:
            raise ConfigError(
                f"{option} is empty; pass the secret the target verifies tokens with, or "
                f"{option}-file with a file that holds it"
            )
        return Signing(secret)
    path = secret_file or target.jwt_secret_file
    if path is not None:
        secret = _read(path, "the JWT secret file").strip()
        if not secret:
            raise ConfigError(f"the JWT secret file {path} is empty; put the secret in it")
        return Signing(secret)
    if target.jwt_secret or target.jwt_private_key_file is None:
        return Signing(target.jwt_secret)
    pem = _read(target.jwt_private_key_file, "[target] jwt_private_key_file")
    if "ENCRYPTED" in pem.split("\n", 2)[0] or "Proc-Type: 4,ENCRYPTED" in pem:
        raise ConfigError(
            f"[target] jwt_private_key_file {target.jwt_private_key_file} holds an encrypted "
            "private key, which squall cannot unlock; export it without a passphrase "
            "(openssl pkey -in KEY -out PLAIN.pem) and point the setting at that file"
        )
    try:
        jwt.encode({"sub": "probe"}, pem, algorithm="RS256")
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
        raise ConfigError(
            f"[target] jwt_private_key_file {target.jwt_private_key_file} holds no PEM RSA "
            "private key to sign RS256 tokens with; point it at the private key whose public "
            "half the target verifies tokens with"
        ) from None
    return Signing(pem, "RS256")


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read {what} {path}: {why}") from exc


def scaled(count: int, scale: float) -> int:
    """``count`` multiplied by ``scale``, at least 1."""
    return max(1, round(count * scale))
