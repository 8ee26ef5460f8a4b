"""The one shape of a verification report row, shared by the file, object and data checks."""


def row(obj: str, check: str, expected, actual, passed: bool, *, skipped: bool = False, note: bool = False) -> dict:
    """One report row; `skipped`: not compared (the row says why), neither a pass nor a failure;
    `note`: housekeeping the verification did (a leftover removed, a role dropped or kept), which could
    not fail and so is no check: it is shown, never counted."""
    return {"object": obj, "check": check, "expected": expected, "actual": actual, "passed": bool(passed),
            "skipped": skipped, "note": note}


def flagged(report, column: str):
    """The rows of `report` (a DataFrame of `row`s) whose boolean `column` is set; none when it has no such column."""
    if column not in report:
        return report.iloc[0:0]
    return report[report[column].fillna(False).astype(bool)]
