"""Every chart draws whatever the names in it: a name is data, never mathtext (formatting.chart_label)."""

import io

import matplotlib
import pandas as pd
import pytest

from prep_ops import charts

matplotlib.use("Agg")

NAMES = ["cost$^$", "x$_$", "price$usd$", "a\\$b$", "evil\nPASS", "plain_name"]


def _drawn(fig) -> list[str]:
    """Every text of the drawn figure as matplotlib shows it (mathtext parsed: a bad formula raises here)."""
    fig.savefig(io.BytesIO(), format="png")
    return [text._preprocess_math(text.get_text())[0] for text in fig.findobj(matplotlib.text.Text) if text.get_text()]


def _frames():
    n = len(NAMES)
    numbers = list(range(1, n + 1))
    return {
        "stacked_bars": lambda: charts.stacked_bars(pd.DataFrame({"a$^$": numbers, "b": numbers}, index=NAMES)
                                                    .rename_axis(index="x$_$ table", columns="y$^$"), "of x$^$", "n$^$"),
        "plan_self_time": lambda: charts.plan_self_time(pd.DataFrame({"id": range(n), "node": NAMES,
                                                                      "self_ms": numbers}), "plan of $^$"),
        "before_after": lambda: charts.before_after(pd.Series(numbers, index=NAMES), pd.Series(numbers, index=NAMES),
                                                    "q$^$"),
        "damage": lambda: charts.damage(pd.DataFrame({"table": NAMES, "missing": numbers, "changed": numbers,
                                                      "added": numbers}), "damage $^$"),
        "cache_hit_ratio": lambda: charts.cache_hit_ratio(pd.DataFrame({"table_name": NAMES, "table_hit_ratio": 0.5,
                                                                        "index_hit_ratio": 0.9})),
        "table_sizes": lambda: charts.table_sizes(pd.DataFrame({"table_name": NAMES, "table_bytes": numbers,
                                                                "index_bytes": numbers, "total_bytes": numbers})),
        "bloat": lambda: charts.bloat(pd.DataFrame({"table_name": NAMES, "kind": "table", "wasted_bytes": numbers,
                                                    "bloat_pct": 10.0, "method": "estimate"})),
        "row_counts": lambda: charts.row_counts(pd.DataFrame({"object": NAMES, "check": "row count",
                                                              "expected": numbers, "actual": numbers}), "rows $^$"),
        "privilege_heatmap": lambda: charts.privilege_heatmap(
            pd.DataFrame([["r$^$"] * 2] * n, index=NAMES, columns=["role$^$", "x$_$"]),
            pd.DataFrame([[1, 2]] * n, index=NAMES, columns=["role$^$", "x$_$"]), "who $^$"),
        "plan_comparison": lambda: charts.plan_comparison(pd.DataFrame({"node": NAMES, "change": "same",
                                                                        "self_ms_before": numbers,
                                                                        "self_ms_after": numbers}), "plans $^$"),
    }


@pytest.mark.server_independent
@pytest.mark.parametrize("chart", sorted(_frames()))
def test_a_chart_with_names_that_look_like_math_is_drawn_showing_them_as_written(chart):
    fig = _frames()[chart]()
    try:
        shown = _drawn(fig)
    finally:
        matplotlib.pyplot.close(fig)
    assert any("cost$^$" in text for text in shown)  # as written: no mathtext, no escape left over
    assert any("evil\\nPASS" in text for text in shown)  # a line break shown, not a second line
    assert not any("\n" in text for text in shown)


@pytest.mark.server_independent
def test_a_table_with_a_very_long_qualified_name_keeps_its_start_and_end_on_the_axis():
    name = "archive_" + "s" * 55 + ".old_" + "t" * 50 + "_rentals"  # two names of 63 characters
    fig = charts.table_sizes(pd.DataFrame({"table_name": [name, "plain"], "table_bytes": [1, 2],
                                           "index_bytes": [1, 2], "total_bytes": [3, 5]}))
    try:
        labels = [label.get_text() for label in fig.axes[0].get_yticklabels()]
        drawn = _drawn(fig)
    finally:
        matplotlib.pyplot.close(fig)
    (long,) = [label for label in labels if label != "plain"]
    assert len(long) == charts.LABEL_WIDTH and long.startswith("archive_sss") and long.endswith("tt_rentals")
    assert "…" in long and "plain" in labels and long in drawn
