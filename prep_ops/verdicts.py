"""What a check's outcome is called, read from its record: PASS, WARN, FAIL or SKIP (no heavy imports:
the runner and the CLI use it without loading pandas)."""

CHECK_MIME = "application/vnd.prep-ops.check+json"
SUMMARY_MIME = "application/vnd.prep-ops.summary+json"
STATUSES = ("PASS", "WARN", "FAIL", "SKIP")


def status(check: dict) -> str:
    """PASS, WARN, FAIL or SKIP for a check recorded as a dict (a CheckResult's fields, as in CHECK_MIME)."""
    if check.get("skipped"):
        return "SKIP"
    if check["passed"]:
        return "PASS"
    return "FAIL" if check["must_hold"] else "WARN"


def status_counts(checks: list[dict]) -> dict[str, int]:
    """How many of `checks` have each status: {"PASS": n, "WARN": n, "FAIL": n, "SKIP": n}."""
    counts = dict.fromkeys(STATUSES, 0)
    for check in checks:
        counts[status(check)] += 1
    return counts
