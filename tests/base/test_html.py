"""The HTML helpers of the base layer: every header, cell, key and value is escaped text."""

from __future__ import annotations

import pytest

from aeg_jupyter.base.html import esc, fmt_value, html_table, kv_table

SCRIPT = "<script>alert('x')</script>"
QUOTES = "a'b\"c"


def test_esc_escapes_tags_ampersands_and_both_quotes() -> None:
    assert esc(SCRIPT) == "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    assert esc(QUOTES) == "a&#x27;b&quot;c"
    assert esc("a & b") == "a &amp; b"


@pytest.mark.parametrize(
    ("value", "text"),
    [(3, "3"), (0.5, "0.5"), (None, "None"), (True, "True"), ({"k": "<b>"}, "{&#x27;k&#x27;: &#x27;&lt;b&gt;&#x27;}")],
)
def test_esc_shows_any_value_as_its_str(value: object, text: str) -> None:
    assert esc(value) == text


def test_html_table_escapes_headers_cells_and_titles() -> None:
    out = html_table([SCRIPT, QUOTES], [[SCRIPT, QUOTES], [{"k": SCRIPT}, 0.123456]], css_class="x'y", highlight=1)
    assert "<script>" not in out and "'x'" not in out
    assert out.count("&lt;script&gt;") == 5  # header, 2 cells x (text + title attribute)
    assert "a&#x27;b&quot;c" in out and "class='aeg-table x&#x27;y'" in out
    assert ">0.1235<" in out  # non-str cells are shown with fmt_value
    assert out.count("<tr class='aeg-row'>") == 1 and out.count("<tr class='aeg-row aeg-best'>") == 1


def test_html_table_cuts_long_cells_but_keeps_the_full_text_on_hover() -> None:
    out = html_table(["k"], [["x" * 100]])
    assert f"title='{'x' * 100}'" in out and f">{'x' * 79}…<" in out
    assert fmt_value(None) == "" and fmt_value(float("nan")) == "" and fmt_value([1, "<b>"]) == '[1, "<b>"]'


def test_kv_table_escapes_keys_values_class_and_caption() -> None:
    out = kv_table([(SCRIPT, SCRIPT), ("n", 3), ("none", None), (QUOTES, QUOTES)], css_class="c", caption="<i>")
    assert "<script>" not in out and "<i>" not in out
    assert out.startswith("<table class='c'><caption>&lt;i&gt;</caption><tr><th style='text-align:left'>&lt;script")
    assert "<td style='text-align:left'>3</td>" in out and "<td style='text-align:left'>None</td>" in out
    assert out.count("a&#x27;b&quot;c") == 2
    assert kv_table([]) == "<table></table>"


def test_records_render_through_kv_table() -> None:
    from aeg_jupyter.base.models import Artifact, Event

    art = Artifact("id1", "cas://blake3/abc", SCRIPT, labels={SCRIPT: QUOTES}, name=SCRIPT)
    ev = Event("ev1", "2026-01-02T00:00:00+00:00", SCRIPT, topic=QUOTES, text=SCRIPT)
    for page, cls in ((art._repr_html_(), "aeg-artifact"), (ev._repr_html_(), "aeg-event")):
        assert page.startswith(f"<table class='{cls}'><caption>")
        assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a&#x27;b&quot;c" in art._repr_html_() and "a&#x27;b&quot;c" in ev._repr_html_()
