"""``squall target``'s usage errors: exit code 2 and the setting named, no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from squall.cli import main


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(capsys.readouterr().err.split())


@pytest.fixture
def rs256_with_junk_public_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform's settings: RS256, its public key file holding no key."""
    (tmp_path / "public.pem").write_text("not a key\n")
    monkeypatch.setenv("SQUALL_JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("SQUALL_JWT_PUBLIC_KEY_FILE", str(tmp_path / "public.pem"))


def test_token_refuses_a_user_id_the_platform_would_refuse(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["target", "token", ""]) == 2
    assert "squall target: user id '' is 0 characters long; expected 1 to 128" in _err(capsys)


@pytest.mark.usefixtures("rs256_with_junk_public_key")
def test_token_without_a_private_key_names_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SQUALL_JWT_PRIVATE_KEY_FILE", raising=False)
    assert main(["target", "token", "alice"]) == 2
    assert "minting RS256 tokens needs SQUALL_JWT_PRIVATE_KEY_FILE" in _err(capsys)
    monkeypatch.setenv("SQUALL_JWT_PRIVATE_KEY_FILE", str(tmp_path / "missing.pem"))
    assert main(["target", "token", "alice"]) == 2
    err = _err(capsys)
    assert "SQUALL_JWT_PRIVATE_KEY_FILE=" in err
    assert "cannot read it (No such file or directory)" in err


def test_token_is_checked_against_the_public_key_the_platform_reads(
    rsa_key_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A token the platform would refuse was printed with exit code 0: the public key was
    # never read (missing, a private key, or of another pair).
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private, public = rsa_key_files
    monkeypatch.setenv("SQUALL_JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("SQUALL_JWT_PRIVATE_KEY_FILE", str(private))
    monkeypatch.setenv("SQUALL_JWT_PUBLIC_KEY_FILE", str(public))
    assert main(["target", "token", "alice"]) == 0
    assert capsys.readouterr().out.count(".") == 2  # one JWT
    monkeypatch.setenv("SQUALL_JWT_PUBLIC_KEY_FILE", str(tmp_path / "missing.pem"))
    assert main(["target", "token", "alice"]) == 2
    assert "SQUALL_JWT_PUBLIC_KEY_FILE=" in _err(capsys)
    other = tmp_path / "other.pem"
    other.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("SQUALL_JWT_PUBLIC_KEY_FILE", str(public))
    monkeypatch.setenv("SQUALL_JWT_PRIVATE_KEY_FILE", str(other))
    assert main(["target", "token", "alice"]) == 2
    err = _err(capsys)
    assert "the platform would refuse this token" in err
    assert "must be one key pair" in err


@pytest.mark.usefixtures("rs256_with_junk_public_key")
def test_serve_refuses_an_unusable_public_key_before_any_worker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The key is checked before PostgreSQL and Redis: no server is needed to see it refused.
    assert main(["target", "serve", "--port", "0", "--workers", "1"]) == 2
    err = _err(capsys)
    assert "SQUALL_JWT_PUBLIC_KEY_FILE=" in err
    assert "holds no RSA key in PEM form" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("ttl", ["1e400", "inf", "1e300", "nan", "0.5", "315360001"])
def test_token_refuses_a_lifetime_past_ten_years_as_usage(
    ttl: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["target", "token", "alice", "--ttl", ttl]) == 2
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "Invalid value for '--ttl'" in err
    assert "expected a number of seconds from 1 to 315360000 (10 years)" in err
    assert "Traceback" not in err
    assert captured.out == ""


def test_token_takes_a_lifetime_of_ten_years_and_no_more(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["target", "token", "alice", "--ttl", "315360000"]) == 0
    assert capsys.readouterr().out.count(".") == 2  # header.claims.signature
    assert main(["target", "token", "alice", "--ttl", "315360000.5"]) == 2


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SQUALL_MESSAGES_PER_SECOND", "0"),
        ("SQUALL_RUN_COST", "-1"),
        ("SQUALL_SOCKET_WRITE_TIMEOUT_S", "nan"),
        ("SQUALL_OPENAI_BASE_URL", "garbage"),
    ],
)
def test_serve_refuses_a_setting_out_of_range_before_anything_starts(
    variable: str, value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    # --host is no address of this machine: were the setting taken, serve would exit 3.
    assert main(["target", "serve", "--host", "192.0.2.1", "--port", "0"]) == 2
    err = _err(capsys)
    assert err.startswith(f"squall target: {variable}")
    assert "expected" in err or "is needed" in err
    assert "cannot listen" not in err


def test_serve_warns_of_each_variable_nothing_reads(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("SQUALL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SQUALL_WORKERS", "4")
    monkeypatch.setenv("SQUALL_MESAGES_PER_SECOND", "3")
    monkeypatch.setenv("SQUALL_RESULTS_DB", "off")
    assert main(["target", "serve", "--host", "192.0.2.1", "--port", "0"]) == 3
    lines = capsys.readouterr().err.splitlines()
    warnings = [line for line in lines if line.startswith("squall target: warning: ")]
    assert warnings == [
        "squall target: warning: SQUALL_MESAGES_PER_SECOND is not a setting of the platform "
        "and is ignored; did you mean SQUALL_MESSAGES_PER_SECOND?",
        "squall target: warning: SQUALL_WORKERS is not a setting of the platform and is "
        "ignored; use the --workers option of squall target serve",
    ]


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("192.0.2.1", "192.0.2.1 is not an address of this machine"),
        ("notahost.invalid", "'notahost.invalid' is not a name this machine can resolve"),
    ],
)
def test_serve_names_a_host_that_is_not_this_machines(
    host: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["target", "serve", "--host", host, "--port", "0"]) == 3
    err = _err(capsys)
    assert err.startswith(f"squall target: cannot listen on {host}:0: ")
    assert problem in err
    assert "pass an address of this machine to --host, such as 127.0.0.1" in err
    assert "--port" not in err
    assert "stop the process that holds it" not in err
