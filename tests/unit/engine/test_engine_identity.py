"""Identity factories: typed ids, HS256 tokens with the platform's claims, picklable."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import jwt
import pytest

from squall.engine.identity import anonymous_identities, jwt_identities

SECRET = "unit-test-secret-of-at-least-32-bytes"
OTHER = "another-secret-of-at-least-32-bytes!"


def test_jwt_identities_mint_verifiable_tokens() -> None:
    factory = jwt_identities(SECRET, prefix="load")
    identity = factory(7)
    assert identity.user_id == "load-7"
    assert identity.index == 7
    assert identity.token is not None
    claims = jwt.decode(
        identity.token,
        SECRET,
        algorithms=["HS256"],
        audience="squall-platform",
        issuer="squall",
    )
    assert claims["sub"] == "load-7"
    assert claims["role"] == "user"
    assert claims["exp"] - claims["iat"] == 3600
    assert identity.auth_headers() == {"Authorization": f"Bearer {identity.token}"}


def test_wrong_secret_fails_verification() -> None:
    token = jwt_identities(SECRET)(0).token
    assert token is not None
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, OTHER, algorithms=["HS256"], audience="squall-platform")


def test_factories_survive_pickling_for_worker_processes() -> None:
    factory = pickle.loads(pickle.dumps(jwt_identities(SECRET)))
    assert factory(1).user_id == "user-1"
    anonymous = pickle.loads(pickle.dumps(anonymous_identities("u")))
    assert anonymous(3).token is None
    assert anonymous(3).auth_headers() == {}


def test_a_short_secret_of_the_target_signs_without_a_warning() -> None:
    # The target's key, whatever its length: PyJWT's short-key warning is not ours to print.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        token = jwt_identities("short")(0).token
    assert token is not None


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty secret"):
        jwt_identities("")


def test_rs256_identities_verify_with_the_public_key(rsa_key_files: tuple[Path, Path]) -> None:
    private, public = rsa_key_files
    token = jwt_identities(private.read_text(), algorithm="RS256")(2).token
    assert token is not None
    claims = jwt.decode(token, public.read_text(), algorithms=["RS256"], audience="squall-platform")
    assert claims["sub"] == "user-2"
    with pytest.raises(ValueError, match="expected one of HS256, RS256"):
        jwt_identities(SECRET, algorithm="none")


def test_a_key_that_cannot_sign_is_refused_when_the_factory_is_made() -> None:
    # It failed in every user, as InvalidKeyError ("could not parse the provided public key").
    with pytest.raises(ValueError, match="cannot sign with the secret given") as raised:
        jwt_identities("not a pem key", algorithm="RS256")
    assert "pass the PEM text of an RSA private key" in str(raised.value)
