"""Token verification and header parsing, with hand-made tokens and headers."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from squall.target.auth import (
    Authenticator,
    Credentials,
    KeyFileError,
    Principal,
    Role,
    Unauthorized,
    find_token,
    mint_token,
    read_key,
)
from squall.target.ids import UserID
from squall.target.settings import DEV_JWT_SECRET, Settings, SettingsError

SETTINGS = Settings(jwt_secret="s" * 40)
NOW = 1_700_000_000.0


def claims(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sub": "u1",
        "role": "user",
        "iss": SETTINGS.jwt_issuer,
        "aud": SETTINGS.jwt_audience,
        "exp": 2**33,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, object], key: str = SETTINGS.jwt_secret) -> str:
    return jwt.encode(payload, key, algorithm="HS256")


def test_minted_token_round_trips() -> None:
    auth = Authenticator(SETTINGS)
    assert auth.verify(mint_token(SETTINGS, "alice")) == Principal(UserID("alice"), Role.USER)
    admin = auth.verify(mint_token(SETTINGS, "root", role=Role.ADMIN))
    assert admin.is_admin


def test_dev_secret_works_without_warnings() -> None:
    settings = Settings()
    assert Authenticator(settings).verify(mint_token(settings, "dev")).user_id == "dev"


@pytest.mark.parametrize(
    ("token", "match"),
    [
        (None, "no bearer token"),
        ("", "no bearer token"),
        ("garbage", "token rejected"),
        (sign(claims(exp=int(NOW))), "expired"),
        (sign(claims(aud="other")), "(?i)audience"),
        (sign(claims(iss="other")), "(?i)issuer"),
        (sign(claims(), key="k" * 40), "(?i)signature"),
        (sign(claims(exp=None)), "exp"),
        (sign(claims(sub=None)), "sub"),
        (sign(claims(sub="")), "'sub'"),
        (sign(claims(sub="u" * 129)), "'sub' is 129 characters long; expected 1 to 128"),
        (sign(claims(sub="a\x00b")), "'sub' holds the NUL character"),
        (sign(claims(sub="a\ud800")), "'sub' holds a lone UTF-16 surrogate"),
        (sign(claims(role="root")), "'role'"),
        (jwt.encode(claims(), "", algorithm="none"), "token rejected"),
    ],
)
def test_rejections(token: str | None, match: str) -> None:
    with pytest.raises(Unauthorized, match=match):
        Authenticator(SETTINGS).verify(token)


def test_missing_role_means_user() -> None:
    principal = Authenticator(SETTINGS).verify(sign(claims(role=None)))
    assert principal.role is Role.USER


def test_expired_minted_token() -> None:
    token = mint_token(SETTINGS, "alice", ttl_s=60, now=NOW)
    with pytest.raises(Unauthorized, match="expired"):
        Authenticator(SETTINGS).verify(token)


def test_rs256(rsa_key_files: tuple[Path, Path]) -> None:
    private, public = rsa_key_files
    settings = Settings(
        jwt_algorithm="RS256",
        jwt_public_key_file=str(public),
        jwt_private_key_file=str(private),
    )
    auth = Authenticator(settings)
    assert auth.verify(mint_token(settings, "rsa-user")).user_id == "rsa-user"
    # An HS256 token signed with the public key text must not pass (algorithm confusion).
    with pytest.raises(Unauthorized):
        auth.verify(sign(claims(), key="x" * 40))
    with pytest.raises(ValueError, match="PRIVATE_KEY_FILE"):
        mint_token(settings.replace(jwt_private_key_file=""), "x")


def test_key_files_are_checked_and_named(rsa_key_files: tuple[Path, Path]) -> None:
    private, public = rsa_key_files
    tmp_path = private.parent
    assert "PUBLIC KEY" in read_key(str(public), "V", private=False)
    assert "PRIVATE KEY" in read_key(str(private), "V", private=True)
    with pytest.raises(KeyFileError, match=r"V='.*missing.pem': cannot read it \(No such file"):
        read_key(str(tmp_path / "missing.pem"), "V", private=False)
    (tmp_path / "junk.pem").write_text("not a key\n")
    with pytest.raises(KeyFileError, match="holds no RSA key in PEM form"):
        read_key(str(tmp_path / "junk.pem"), "V", private=False)
    with pytest.raises(KeyFileError, match="holds an RSA private key; it needs the public one"):
        read_key(str(private), "V", private=False)
    with pytest.raises(KeyFileError, match="holds an RSA public key; it needs the private one"):
        read_key(str(public), "V", private=True)
    rs256 = Settings(jwt_algorithm="RS256", jwt_public_key_file=str(private))
    with pytest.raises(KeyFileError, match="SQUALL_JWT_PUBLIC_KEY_FILE="):
        Authenticator(rs256)


@pytest.mark.parametrize("user", ["", "u" * 129, "a\x00b"])
def test_minting_refuses_a_user_id_the_platform_refuses(user: str) -> None:
    with pytest.raises(ValueError, match="expected 1 to 128 characters"):
        mint_token(SETTINGS, user)


def test_find_token() -> None:
    assert find_token([]) is None
    assert find_token([(b"authorization", b"Bearer abc")]) == Credentials("abc")
    assert find_token([(b"Authorization", b"bearer  abc ")]) == Credentials("abc")
    assert find_token([(b"authorization", b"Basic abc")]) is None
    assert find_token([(b"sec-websocket-protocol", b"bearer, tok")]) == Credentials("tok", "bearer")
    # Selected as the client spelled it: a client may refuse any value it did not offer.
    assert find_token([(b"sec-websocket-protocol", b"Bearer, tok")]) == Credentials("tok", "Bearer")
    assert find_token([(b"sec-websocket-protocol", b"chat, tok")]) is None
    assert find_token([(b"sec-websocket-protocol", b"bearer")]) is None
    # The Authorization header wins over the subprotocol.
    both = [(b"sec-websocket-protocol", b"bearer, sub"), (b"authorization", b"Bearer hdr")]
    assert find_token(both) == Credentials("hdr")


def test_a_short_hs256_secret_is_refused_with_how_to_make_one() -> None:
    with pytest.raises(SettingsError, match=r"SQUALL_JWT_SECRET is 6 bytes; HS256 needs") as info:
        Settings.from_env({"SQUALL_JWT_SECRET": "secret"})
    assert "secrets.token_urlsafe(32)" in str(info.value)
    assert Settings.from_env({"SQUALL_JWT_SECRET": "s" * 32}).jwt_secret == "s" * 32
    # The development default stays usable on a laptop (it is public anyway).
    assert Settings.from_env({}).jwt_secret == DEV_JWT_SECRET


def test_an_encrypted_or_non_rsa_key_file_is_named_plainly(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(KeyFileError, match=r"holds an encrypted private key; decrypt it first"):
        read_key(str(encrypted), "V", private=True)
    with pytest.raises(KeyFileError, match=r"holds an encrypted private key; it needs the public"):
        read_key(str(encrypted), "V", private=False)
    elliptic = tmp_path / "ec.pem"
    elliptic.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError) as info:
        read_key(str(elliptic), "V", private=True)
    assert "holds no RSA key in PEM form (an EC or Ed25519 key" in str(info.value)
    assert "generator" not in str(info.value)
