"""Test helper: set or delete the value at a plan field path such as `a.b[0].c` (the validator's paths)."""

from __future__ import annotations

import re
from typing import Any

DELETE = object()
"""Pass as the value to delete the field instead of setting it."""


def set_path(inputs: dict[str, Any], path: str, value: Any) -> None:
    node: Any = inputs
    parts = [p for p in re.split(r"\.|(\[\d+\])", path) if p]
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    last = parts[-1]
    key: Any = int(last[1:-1]) if last.startswith("[") else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
