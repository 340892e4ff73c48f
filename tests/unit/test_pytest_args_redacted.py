"""The pytest arguments report.json records keep no secret (pure)."""

from __future__ import annotations

from squall.pytest_plugin import REDACTED, redacted_args


def test_a_secrets_value_is_redacted_in_either_form() -> None:
    args = ["-x", "--squall-jwt-secret", "s3cret", "--squall-jwt-secret=t0p", "-k", "s3cret"]
    assert redacted_args(args) == [
        "-x",
        "--squall-jwt-secret",
        REDACTED,
        f"--squall-jwt-secret={REDACTED}",
        "-k",
        "s3cret",  # the value of another option is kept
    ]


def test_the_secret_files_path_is_kept() -> None:
    args = ["--squall-jwt-secret-file", "/run/secret", "tests/"]
    assert redacted_args(args) == args
