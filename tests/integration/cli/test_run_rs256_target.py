"""``squall run`` against a target that verifies RS256 tokens: ``[target] jwt_private_key_file``
signs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fresh_databases import fresh_database
from squall.cli import main
from squall.services import Endpoints
from squall.services.platform import RunningPlatform, start_platform

pytestmark = pytest.mark.integration


@pytest.fixture
def rs256_platform(
    shared_services: Endpoints, rsa_key_files: tuple[Path, Path]
) -> Iterator[tuple[RunningPlatform, Path]]:
    endpoints = shared_services
    private, public = rsa_key_files
    settings = {"SQUALL_JWT_ALGORITHM": "RS256", "SQUALL_JWT_PUBLIC_KEY_FILE": str(public)}
    with fresh_database(endpoints, "squall_rs256") as database:
        platform = start_platform(database, endpoints.redis_url, workers=1, settings=settings)
        try:
            yield platform, private
        finally:
            platform.stop()


def test_a_private_key_file_signs_the_tokens_of_an_rs256_target(
    rs256_platform: tuple[RunningPlatform, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    platform, private = rs256_platform
    monkeypatch.chdir(tmp_path)
    (tmp_path / "squall.toml").write_text(
        f'[target]\nurl = "{platform.ws_url}"\njwt_private_key_file = "{private}"\n'
    )
    args = ["run", "-s", "websocket_concurrency", "--scale", "0.05", "--results-db", "off"]
    assert main([*args, "--no-progress"]) == 0
    assert "PASSED" in capsys.readouterr().out
    # The same run signing HS256 with a secret the target does not use is refused by it.
    assert main([*args, "--no-progress", "--jwt-secret", "x" * 40]) == 1
    capsys.readouterr()
    # A file that holds no private key is named before anything runs.
    public = private.with_name("public.pem")
    (tmp_path / "squall.toml").write_text(
        f'[target]\nurl = "{platform.ws_url}"\njwt_private_key_file = "{public}"\n'
    )
    assert main([*args, "--no-progress"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "holds no PEM RSA private key to sign RS256 tokens with" in err
