"""The report's inline SVG charts (pure)."""

from __future__ import annotations

from squall.report.charts import Line, bar_chart, line_chart


def test_names_from_outside_show_control_characters_as_escapes() -> None:
    # A metric or group name a target sent may hold an ESC: report.html shows it as "\x1b".
    name = "errors.\x1b[31mred<b>"
    svg = line_chart(name, [Line(name, [(0.0, 1.0), (1.0, 2.0)])], x_label="s", y_label=name)
    bars = bar_chart(name, [(name, 1.0)], y_label="share")
    for text in (svg, bars):
        assert "\x1b" not in text
        assert "errors.\\x1b[31mred&lt;b&gt;" in text
