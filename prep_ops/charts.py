"""Charts for the runbooks: matplotlib figures, titled, axes labelled, one message each."""

import matplotlib.pyplot as plt
import pandas as pd


def stacked_bars(table: pd.DataFrame, title: str, ylabel: str, xlabel: str = ""):
    """A stacked bar chart of a pivot table: one bar per row, one colour per column."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    table.plot(kind="bar", stacked=True, ax=ax, width=0.8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel or table.index.name or "")
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
    ax.set_title(f"Teacher load, {term} (red: over capacity)")
    ax.set_xlabel("weekly hours offered (h)")
    ax.set_ylabel("students enrolled (count)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig
