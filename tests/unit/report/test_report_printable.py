"""Control characters in text from outside, shown as their escapes."""

from __future__ import annotations

from squall.report.printable import printable


def test_control_characters_show_as_escapes_and_the_rest_is_kept() -> None:
    assert printable("a\x1b[2Jb\x00c\x7f\x9b\r") == "a\\x1b[2Jb\\x00c\\x7f\\x9b\\x0d"
    assert printable("tab\tnew\nline é ✓ [x]") == "tab\tnew\nline é ✓ [x]"
    assert printable("\ufffe\uffff") == "\\ufffe\\uffff"
    assert printable(12) == "12"


def test_lone_surrogates_show_as_escapes() -> None:
    # Bytes that are not UTF-8, decoded with surrogateescape: UTF-8 cannot encode the result.
    text = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    assert printable(text) == "caf\\udce9 \\udcff"
    assert printable("\ud800\udfff é") == "\\ud800\\udfff é"
    printable(text).encode("utf-8")
