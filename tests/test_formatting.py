"""How numbers, money, sizes and tables are shown: one helper for explore, health, the CLI and the notebooks."""

import pandas as pd
import pytest

from prep_ops import formatting


@pytest.mark.parametrize("amount, shown", [(1234.5, "US$ 1,234.50"), (0, "US$ 0.00"), (-3, "-US$ 3.00"),
                                           (1234567.891, "US$ 1,234,567.89"), (None, ""), (float("nan"), "")])
def test_money_shows_dollars_with_cents_and_thousands(amount, shown):
    assert formatting.money(amount) == shown


def test_numbers_are_rounded_with_their_units():
    assert formatting.number(263.104396, "ms") == "263.1 ms"
    assert formatting.number(1204331, "rows") == "1,204,331 rows"
    assert formatting.percent(0.2053) == "20.5%" and formatting.seconds(61.25) == "61.2 s"
    assert formatting.size(214 * 1024 * 1024) == "214 MB" and formatting.size(8192) == "8,192 bytes"


def test_shorten_cuts_only_at_a_word_boundary():
    text = "{'table': 'public.enrollments', 'reason': 'sequential scan'}"
    short = formatting.shorten(text, 40)
    assert len(short) <= 40 and short.endswith(" …") and text.startswith(short[:-2])
    assert text.split()[len(short[:-2].split()) - 1] == short[:-2].split()[-1]  # the last word kept is whole
    assert formatting.shorten("short enough", 40) == "short enough"


def test_tables_hide_only_a_meaningless_index():
    plain = pd.DataFrame({"instrument": ["piano"], "amount": [1234.5]})
    html = formatting.table(plain, {"amount": formatting.money}).to_html()
    assert "US$ 1,234.50" in html and "row0_col0" in html and "row_heading" not in html
    named = plain.set_index("instrument")
    assert "row_heading" in formatting.table(named).to_html()  # a meaningful index stays


@pytest.mark.parametrize("name, shown", [
    ("tuition_payments", "tuition_payments"), ("Ünïcødé Tåble", "Ünïcødé Tåble"), ('quo"te.ta ble', 'quo"te.ta ble'),
    ("t\x1b[2K\x1b[1Ar PASS", r"t\x1b[2K\x1b[1Ar PASS"), ("evil\nPASS fine", r"evil\nPASS fine"),
    ("a\rb\tc", r"a\rb\tc"), ("nel\x85ls\u2028", r"nel\x85ls\u2028"), ("\u202eabc", r"\u202eabc")])
def test_a_name_shown_on_a_terminal_keeps_its_text_and_shows_its_control_characters(name, shown):
    assert formatting.terminal(name) == shown
    # text of several lines with the name shown in it: prep-ops' own line break kept, the name as shown
    assert formatting.terminal(f"{shown}\nnext", lines=True) == f"{shown}\nnext"


def test_a_styled_table_shows_markup_in_values_labels_names_and_lists_as_text():
    frame = pd.DataFrame({"<b>col</b>": ["<i>value</i>", ["<u>in a list</u>"]], "amount": [1234.5, 2.0]},
                         index=pd.Index(["<s>row</s>", "plain_name"], name="<em>name</em>"))
    html = formatting.table(frame, {"amount": formatting.money}).to_html()
    for tag in ("b", "i", "u", "s", "em"):
        assert f"<{tag}>" not in html and f"&lt;{tag}&gt;" in html
    assert "US$ 1,234.50" in html and "plain_name" in html


@pytest.mark.parametrize("name, shown", [
    ("tuition_payments", "tuition_payments"), ("Order by user", "Order by user"),
    ("<img src=x onerror=alert(1)>", r"\<img src=x onerror=alert(1)\>"), ("a|b", r"a\|b"), ("`x`", r"\`x\`"),
    ("*bold* _em_", r"\*bold\* \_em\_"), ("[l](javascript:x)", r"\[l\](javascript:x)"), ("$x$", r"\$x\$"),
    ("&lt;", r"\&lt;"), ("a\\b", r"a\\b"), ("x\n## PASS", r"x\\n\#\# PASS")])
def test_a_name_in_markdown_is_literal_text_on_one_line(name, shown):
    assert formatting.markdown(name) == shown


@pytest.mark.parametrize("now, shown, said", [
    (["VACUUM a", "VACUUM a", "VACUUM b"], ["VACUUM a", "VACUUM b"], "now also VACUUM a (again)"),
    (["VACUUM b"], ["VACUUM b", "VACUUM b"], "no longer VACUUM b (again)"),
    (["VACUUM b", "VACUUM a"], ["VACUUM a", "VACUUM b"], "the same statements in another order"),
    (["VACUUM c", "VACUUM a"], ["VACUUM a", "VACUUM b"], "now also VACUUM c; no longer VACUUM b"),
], ids=["one-statement-now-twice", "one-statement-no-longer-twice", "reordered", "changed"])
def test_a_plan_differing_by_a_repeated_statement_is_not_called_the_same_in_another_order(now, shown, said):
    """A plan whose statements differ from the one shown only by a statement repeated was refused as "the same
    statements in another order": the repeat is named (a REINDEX run twice is not the plan shown)."""
    assert formatting.plan_difference(now, shown) == said
