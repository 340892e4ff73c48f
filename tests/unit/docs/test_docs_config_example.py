"""docs/configuration.md's complete example loads with squall's own loader, and each of its
thresholds is on a metric squall records or the example declares."""

from __future__ import annotations

from pathlib import Path

from squall.config import load_config
from squall.metrics.thresholds import standard_kind

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def _example() -> str:
    text = DOC.read_text()
    section = text[text.index("\n## A complete example\n") :]
    start = section.index("```toml\n") + len("```toml\n")
    return section[start : section.index("\n```", start)]


def test_the_complete_example_loads_and_its_thresholds_name_recorded_metrics(
    tmp_path: Path,
) -> None:
    path = tmp_path / "squall.toml"
    path.write_text(_example())
    config = load_config(path, cwd=tmp_path)
    assert config.run.scenarios == ("websocket_concurrency", "db_race")
    assert config.scenario_params("websocket_concurrency") == {"users": 75, "messages": 15}
    metrics = {
        metric
        for scenario in config.run.scenarios
        for metric in config.thresholds_for(scenario, capacity=True).rules
    }
    assert {"timeouts", "errors.connect", "users"} <= metrics
    unknown = sorted(
        m for m in metrics if standard_kind(m) is None and m not in config.custom_metrics
    )
    assert unknown == []
