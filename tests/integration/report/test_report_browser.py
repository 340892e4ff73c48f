"""report.html in a real headless Chromium: it renders, with no console error."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from squall.report.html import report_html

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
SAMPLES = Path(__file__).parents[2] / "unit" / "report"


def _sample_report() -> dict[str, object]:
    sys.path.insert(0, str(SAMPLES))
    try:
        from report_samples import load_scenario, race_scenario, report
    finally:
        sys.path.remove(str(SAMPLES))
    return report(load_scenario(failed=True), race_scenario())


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium"
)
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(report_html(_sample_report()), encoding="utf-8")
    profile = Path(tempfile.mkdtemp(prefix="squall-chromium-"))
    try:
        dom = _chromium("--dump-dom", page.as_uri(), profile=profile)
        assert dom.returncode == 0, dom.stderr[-2000:]
        # Chromium logs every console message (errors and uncaught exceptions
        # included) as ":CONSOLE"; the page logs nothing on its own.
        console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
        assert console == []
        assert 'data-ready="yes"' in dom.stdout  # the inline script ran to its end
        for section in ("summary", "thresholds", "scenario-websocket_concurrency", "races"):
            assert f'id="{section}"' in dom.stdout
        shot = tmp_path / "report.png"
        result = _chromium(
            "--window-size=1400,2400", f"--screenshot={shot}", page.as_uri(), profile=profile
        )
        assert result.returncode == 0, result.stderr[-2000:]
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 50_000  # charts and tables, not a blank page
    finally:
        shutil.rmtree(profile, ignore_errors=True)
