"""The one shape of a verification report row, shared by the file, object and data checks."""


def row(obj: str, check: str, expected, actual, passed: bool, *, skipped: bool = False) -> dict:
    """One report row; `skipped`: not compared (the row says why), neither a pass nor a failure."""
    return {"object": obj, "check": check, "expected": expected, "actual": actual, "passed": bool(passed),
            "skipped": skipped}
