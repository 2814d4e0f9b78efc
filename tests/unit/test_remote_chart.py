"""``postroom remote stats``' terminal chart: bars scaled to the busiest day, deliveries
then bounces."""

from __future__ import annotations

from rich.console import Console

from postroom.cli.remote import CHART_WIDTH, chart


def _render(per_day: list[dict[str, object]]) -> list[str]:
    console = Console(width=200, record=True, color_system=None)
    console.print(chart(per_day, "t"))
    return console.export_text().splitlines()


def test_bars_are_scaled_to_the_busiest_day() -> None:
    lines = _render(
        [
            {"date": "2026-12-01", "stats": {"delivery_count": 30, "bounce_count": 10}},
            {"date": "2026-12-02", "stats": {"delivery_count": 10, "bounce_count": 0}},
            {"date": "2026-12-03", "stats": {"delivery_count": 0, "bounce_count": 0}},
        ]
    )
    bars = {line.split()[1]: line.count("█") for line in lines if line.split()[1:2]
            and line.split()[1].startswith("2026")}  # fmt: skip
    assert bars == {"2026-12-01": CHART_WIDTH, "2026-12-02": CHART_WIDTH // 4, "2026-12-03": 0}


def test_no_days_is_an_empty_chart() -> None:
    assert not any("█" in line for line in _render([]))
