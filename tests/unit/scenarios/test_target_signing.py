"""How the harness signs a target's tokens: which setting wins, and bad key files named."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from squall.config import ConfigError, TargetConfig
from squall.scenarios.target import Signing, TargetInfo, signing


def _private_key(folder: Path) -> tuple[Path, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "private.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path, key


def test_command_line_then_secret_file_then_config(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-file\n")
    key_file, _ = _private_key(tmp_path)
    config = TargetConfig(jwt_private_key_file=key_file)
    assert signing(config, "cli") == Signing("cli")
    assert signing(config, None, tmp_path / "secret") == Signing("from-file")
    assert signing(TargetConfig(jwt_secret_file=tmp_path / "secret")) == Signing("from-file")
    assert signing(TargetConfig(jwt_secret="cfg")) == Signing("cfg")
    assert signing(TargetConfig()) == Signing(None)
    rs256 = signing(config)
    assert rs256.algorithm == "RS256"
    assert rs256.key == key_file.read_text()


def test_an_rs256_target_gets_tokens_its_public_key_verifies(tmp_path: Path) -> None:
    key_file, key = _private_key(tmp_path)
    signer = signing(TargetConfig(jwt_private_key_file=key_file))
    target = TargetInfo(
        ws_url="ws://127.0.0.1:9/v1/ws",
        http_url="http://127.0.0.1:9",
        jwt_secret=signer.key or "",
        jwt_algorithm=signer.algorithm,
    )
    token = target.identities("rsa")(0).token
    assert token is not None
    claims = jwt.decode(token, key.public_key(), algorithms=["RS256"], audience="squall-platform")
    assert claims["sub"] == "rsa-0"


def test_unusable_key_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read \[target\] jwt_private_key_file .*missing"):
        signing(TargetConfig(jwt_private_key_file=tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a key\n")
    with pytest.raises(ConfigError, match="holds no PEM RSA private key"):
        signing(TargetConfig(jwt_private_key_file=tmp_path / "junk.pem"))
    with pytest.raises(ConfigError, match="cannot read the JWT secret file"):
        signing(TargetConfig(), None, tmp_path / "no-secret")
