"""Control characters in text from outside, shown as their escapes."""

from __future__ import annotations

from squall.report.printable import printable


def test_control_characters_show_as_escapes_and_the_rest_is_kept() -> None:
    assert printable("a\x1b[2Jb\x00c\x7f\x9b\r") == "a\\x1b[2Jb\\x00c\\x7f\\x9b\\x0d"
    assert printable("tab\tnew\nline é ✓ [x]") == "tab\tnew\nline é ✓ [x]"
    assert printable("\ufffe\uffff") == "\\ufffe\\uffff"
    assert printable(12) == "12"
