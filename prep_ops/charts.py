"""Charts for the runbooks: matplotlib figures, titled, axes labelled, one message each.

Every label that can hold a name from the database (a table, a role, a query, a plan node) goes through
formatting.chart_label, titles included: shown as written, never read as mathtext (a table named
"a$^$" would stop the figure from being drawn).
"""

import matplotlib.pyplot as plt
import pandas as pd

from .formatting import chart_label


LABEL_WIDTH = 40  # characters of a table's, role's or object's name on an axis or in a legend


def _text(value):
    """A label value (a table, a role, an object) as a chart shows it literally, at most LABEL_WIDTH
    characters; numbers and other values unchanged."""
    return chart_label(value, LABEL_WIDTH) if isinstance(value, str) else value


def _index(index: pd.Index) -> pd.Index:
    if isinstance(index, pd.MultiIndex):
        return index.map(lambda labels: tuple(map(_text, labels))).set_names([_text(n) for n in index.names])
    return index.map(_text).rename(_text(index.name))


def _labelled(frame):
    """`frame` (a DataFrame or Series) with its labels and their names as a chart shows them literally."""
    frame = frame.copy()
    frame.index = _index(frame.index)
    if isinstance(frame, pd.DataFrame):
        frame.columns = _index(frame.columns)
    return frame


def stacked_bars(table: pd.DataFrame, title: str, ylabel: str, xlabel: str = ""):
    """A stacked bar chart of a pivot table: one bar per row, one colour per column."""
    table = _labelled(table)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    table.plot(kind="bar", stacked=True, ax=ax, width=0.8)
    ax.set_title(chart_label(title))
    ax.set_ylabel(chart_label(ylabel))
    ax.set_xlabel(chart_label(xlabel) if xlabel else table.index.name or "")
    ax.legend(title=table.columns.name, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def teacher_load(load: pd.DataFrame, term: str):
    """Weekly hours each teacher offers against students enrolled; the line is a full timetable."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ratio = load["load_ratio"].astype(float)
    colours = ["tab:red" if r > 1 else "tab:blue" for r in ratio]
    ax.scatter(load["weekly_hours"], load["enrolled"], c=colours, alpha=0.5, s=18)
    hours = pd.Series(sorted(load["weekly_hours"].dropna().unique()))
    ax.plot(hours, hours * 2, color="black", linewidth=1, label="full: 2 half-hour lessons per hour")
    ax.set_title(chart_label(f"Teacher load, {term} (red: over capacity)"))
    ax.set_xlabel("weekly hours offered (h)")
    ax.set_ylabel("students enrolled (count)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plan_self_time(nodes: pd.DataFrame, title: str):
    """Self time per plan node, slowest at the top: where the query spends its time."""
    data = nodes.assign(label=(nodes["id"].astype(str) + " " + nodes["node"]).map(chart_label)).sort_values("self_ms")
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(data) + 1.5))
    ax.barh(data["label"], data["self_ms"], color="tab:orange")
    ax.set_title(chart_label(title))
    ax.set_xlabel("self time (ms)")
    fig.tight_layout()
    return fig


def before_after(ms_before: pd.Series, ms_after: pd.Series, title: str):
    """Time before and after a change, side by side per item."""
    frame = _labelled(pd.DataFrame({"before": ms_before, "after": ms_after}).astype(float))
    fig, ax = plt.subplots(figsize=(8, 4))
    if frame.notna().any().any():
        frame.plot(kind="bar", ax=ax, color=["tab:red", "tab:green"])
    else:  # nothing timed (a database without the school's tables, no query named): say so, pandas cannot plot it
        ax.set_xticks([])
        ax.text(0.5, 0.5, "nothing timed", transform=ax.transAxes, ha="center", va="center")
    ax.set_title(chart_label(title))
    ax.set_ylabel("time (ms)")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig


def damage(differences: pd.DataFrame, title: str):
    """Rows missing, changed and added per table, against a backup: where the damage is."""
    frame = _labelled(differences.set_index("table")[["missing", "changed", "added"]].astype(float))
    fig, ax = plt.subplots(figsize=(8, 0.5 * max(len(frame), 1) + 2))
    if frame.empty:  # nothing damaged: say so rather than plot nothing (pandas cannot plot an empty frame)
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no table differs from the backup", transform=ax.transAxes, ha="center", va="center")
    else:
        frame.plot(kind="barh", stacked=True, ax=ax, color=["tab:red", "tab:orange", "tab:blue"])
    ax.set_title(chart_label(title))
    ax.set_xlabel("rows (count)")
    ax.set_ylabel("table")
    fig.tight_layout()
    return fig


def cache_hit_ratio(ratios: pd.DataFrame, warn: float = 0.99):
    """Per table, the share of block requests served from memory, for the table and for its indexes."""
    shown = _labelled(ratios.set_index("table_name")[["table_hit_ratio", "index_hit_ratio"]].astype(float) * 100)
    shown.columns = ["table", "indexes"]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.35 * max(len(shown), 3)))
    if shown.notna().any().any():
        shown.iloc[::-1].plot(kind="barh", ax=ax, width=0.8)
        ax.set_xlim(max(0, min(shown.min().min(), warn * 100) - 5), 100)
    else:
        ax.set_xlim(0, 100)
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no blocks requested yet", transform=ax.transAxes, ha="center", va="center")
    ax.axvline(warn * 100, color="tab:red", linestyle="--", linewidth=1, label=f"warn below {warn:.0%}")
    ax.set_title("Cache hit ratio by table (since statistics reset)")
    ax.set_xlabel("block requests served from memory (%)")
    ax.set_ylabel("table")
    ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def table_sizes(sizes: pd.DataFrame):
    """The largest tables on disk, split into table data, indexes and the rest (TOAST, free space map)."""
    mib = 1024 * 1024
    table = sizes["table_bytes"].astype(float).fillna(0)
    indexes = sizes["index_bytes"].astype(float).fillna(0)
    parts = pd.DataFrame({"table": table / mib, "indexes": indexes / mib,
                          "other": (sizes["total_bytes"].astype(float) - table - indexes).clip(lower=0) / mib})
    names = sizes["schema_name"] + "." + sizes["table_name"] if "schema_name" in sizes else sizes["table_name"]
    parts.index = _index(pd.Index(names))  # schema-qualified: two schemas may each have a table of a name
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.35 * max(len(parts), 3)))
    if len(parts):
        parts.iloc[::-1].plot(kind="barh", stacked=True, ax=ax, width=0.8)
        ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left")
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no tables", transform=ax.transAxes, ha="center", va="center")
    ax.set_title("Largest tables by size on disk")
    ax.set_xlabel("size (MiB)")
    ax.set_ylabel("table")
    fig.tight_layout()
    return fig


def bloat(bloat: pd.DataFrame):
    """Wasted space per table, split into the table itself and its indexes (measured or estimated, as the title says)."""
    known = bloat.dropna(subset=["bloat_pct"])
    parts = known.pivot_table(index="table_name", columns="kind", values="wasted_bytes",
                              aggfunc="sum", fill_value=0).reindex(columns=["table", "index"], fill_value=0)
    parts = _labelled(parts.rename(columns={"index": "indexes"}).astype(float))
    mib = parts.to_numpy().max(initial=0) >= 1024 * 1024
    parts = parts / (1024 * 1024 if mib else 1024)
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.35 * max(len(parts), 3)))
    if len(parts):
        parts.loc[parts.sum(axis=1).sort_values().index].plot(kind="barh", stacked=True, ax=ax, width=0.8)
        ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left")
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no tables with statistics", transform=ax.transAxes, ha="center", va="center")
    methods = set(known["method"])
    how = ("measured with pgstattuple" if methods == {"measured"} else
           "estimated from statistics, not measured" if methods <= {"estimate"} else "partly measured, partly estimated")
    ax.set_title(f"Bloat per table ({how})")
    ax.set_xlabel(f"wasted space ({'MiB' if mib else 'KiB'})")
    ax.set_ylabel("table")
    fig.tight_layout()
    return fig


def row_counts(report: pd.DataFrame, title: str):
    """Rows per table in the source (from the manifest) and in the restored copy."""
    counts = _labelled(report[report["check"] == "row count"].set_index("object")[["expected", "actual"]].astype(float))
    counts.columns = ["source", "restored"]
    fig, ax = plt.subplots(figsize=(8, 4))
    counts.plot(kind="bar", ax=ax, color=["tab:blue", "tab:green"])
    ax.set_title(chart_label(title))
    ax.set_ylabel("rows (count)")
    ax.set_xlabel("table")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def privilege_heatmap(matrix: pd.DataFrame, levels: pd.DataFrame,
                      title: str = "Who can do what: access per role and object"):
    """Roles (columns) × objects (rows), coloured by access level (none, read, write, change or own)
    and labelled with PostgreSQL's privilege letters (r=SELECT a=INSERT w=UPDATE d=DELETE ...)."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    names = ("none", "read", "write", "change or own")
    colours = ListedColormap(["#f2f2f2", "#a6d96a", "#fdae61", "#d7191c"])
    fig, ax = plt.subplots(figsize=(max(7.0, 4.5 + 1.1 * len(matrix.columns)), 1.5 + 0.38 * max(len(matrix), 3)))
    if matrix.empty:
        ax.text(0.5, 0.5, "no objects", transform=ax.transAxes, ha="center", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        image = ax.imshow(levels.to_numpy(dtype=float), cmap=colours, norm=BoundaryNorm([-0.5, 0.5, 1.5, 2.5, 3.5], 4),
                          aspect="auto")
        for (i, j), text in pd.DataFrame(matrix.to_numpy()).stack().items():
            ax.text(j, i, _text(text), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(matrix.columns)), _index(matrix.columns), rotation=30, ha="right")
        ax.set_yticks(range(len(matrix)), _index(matrix.index))
        bar = fig.colorbar(image, ax=ax, ticks=range(4), fraction=0.04)
        bar.ax.set_yticklabels(names)
        bar.set_label("access level")
    ax.set_title(chart_label(title))
    ax.set_xlabel("role")
    ax.set_ylabel("object")
    fig.tight_layout()
    return fig


def plan_comparison(comparison: pd.DataFrame, title: str):
    """Self time of each plan node before and after a change, aligned node by node (from
    plan_compare.compare), in tree order from the top; a node's change is named beside it."""
    data = comparison.iloc[::-1]
    labels = [chart_label(f"{node.strip()}" + ("" if change == "same" else f"  [{change}]"))
              for node, change in zip(data["node"].str.replace("\u00a0", " "), data["change"])]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(data) + 1.5))
    positions = range(len(data))
    ax.barh([p + 0.2 for p in positions], data["self_ms_before"].fillna(0), height=0.4, color="tab:red", label="before")
    ax.barh([p - 0.2 for p in positions], data["self_ms_after"].fillna(0), height=0.4, color="tab:green", label="after")
    ax.set_yticks(list(positions), labels)
    ax.set_title(chart_label(title))
    ax.set_xlabel("self time (ms)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
