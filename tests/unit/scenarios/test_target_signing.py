"""How the harness signs a target's tokens: which setting wins, and bad key files named."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from squall.config import ConfigError, TargetConfig
from squall.scenarios.target import Signing, TargetInfo, lacks_signing_key, signing


def test_command_line_then_secret_file_then_config(rsa_key_files: tuple[Path, Path]) -> None:
    key_file, _ = rsa_key_files
    tmp_path = key_file.parent
    (tmp_path / "secret").write_text("from-file\n")
    config = TargetConfig(jwt_private_key_file=key_file)
    assert signing(config, "cli") == Signing("cli")
    assert signing(config, None, tmp_path / "secret") == Signing("from-file")
    assert signing(TargetConfig(jwt_secret_file=tmp_path / "secret")) == Signing("from-file")
    assert signing(TargetConfig(jwt_secret="cfg")) == Signing("cfg")
    assert signing(TargetConfig()) == Signing(None)
    rs256 = signing(config)
    assert rs256.algorithm == "RS256"
    assert rs256.key == key_file.read_text()


def test_both_command_line_options_or_an_empty_secret_are_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-file\n")
    with pytest.raises(ConfigError, match="--jwt-secret and --jwt-secret-file are both given"):
        signing(TargetConfig(), "cli", tmp_path / "secret")
    with pytest.raises(ConfigError, match="--jwt-secret is empty"):
        signing(TargetConfig(jwt_secret="cfg"), "")
    with pytest.raises(ConfigError, match="--squall-jwt-secret is empty"):
        signing(TargetConfig(), "", option="--squall-jwt-secret")


def test_an_rs256_target_gets_tokens_its_public_key_verifies(
    rsa_key_files: tuple[Path, Path],
) -> None:
    key_file, public = rsa_key_files
    signer = signing(TargetConfig(jwt_private_key_file=key_file))
    target = TargetInfo(
        ws_url="ws://127.0.0.1:9/v1/ws",
        http_url="http://127.0.0.1:9",
        jwt_secret=signer.key or "",
        jwt_algorithm=signer.algorithm,
    )
    token = target.identities("rsa")(0).token
    assert token is not None
    claims = jwt.decode(token, public.read_text(), algorithms=["RS256"], audience="squall-platform")
    assert claims["sub"] == "rsa-0"


def test_unusable_key_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read \[target\] jwt_private_key_file .*missing"):
        signing(TargetConfig(jwt_private_key_file=tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a key\n")
    with pytest.raises(ConfigError, match="holds no PEM RSA private key"):
        signing(TargetConfig(jwt_private_key_file=tmp_path / "junk.pem"))
    with pytest.raises(ConfigError, match="cannot read the JWT secret file"):
        signing(TargetConfig(), None, tmp_path / "no-secret")
    (tmp_path / "blank").write_text(" \n")
    with pytest.raises(ConfigError, match=r"the JWT secret file .*blank is empty"):
        signing(TargetConfig(jwt_secret_file=tmp_path / "blank"))


def test_an_encrypted_key_file_is_named_with_how_to_unlock_it(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    locked = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    (tmp_path / "locked.pem").write_bytes(locked)
    with pytest.raises(ConfigError, match="holds an encrypted private key") as info:
        signing(TargetConfig(jwt_private_key_file=tmp_path / "locked.pem"))
    assert "openssl pkey -in KEY -out PLAIN.pem" in str(info.value)


def test_a_running_target_that_authenticates_needs_a_key() -> None:
    running = TargetConfig(url="ws://127.0.0.1:9/v1/ws")
    assert lacks_signing_key(running, True, Signing(None))
    assert not lacks_signing_key(running, True, Signing("s"))
    assert not lacks_signing_key(running, False, Signing(None))  # an anonymous protocol
    assert not lacks_signing_key(TargetConfig(), True, Signing(None))  # squall starts it
