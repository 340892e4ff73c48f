"""docs/pytest.md shows test_docs_example.py verbatim: the example in the docs is a real test."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_docs_example_is_the_test_file_verbatim() -> None:
    doc = (ROOT / "docs" / "pytest.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
    example = (ROOT / "tests" / "integration" / "plugin" / "test_docs_example.py").read_text()
    assert blocks, "docs/pytest.md has no python code block"
    assert blocks[0] == example


def test_docs_example_fits_in_30_lines() -> None:
    example = (ROOT / "tests" / "integration" / "plugin" / "test_docs_example.py").read_text()
    body = example.split("MESSAGES = 15", 1)[1]
    assert len(body.strip().splitlines()) <= 30
