"""Write a study spec (tables of scalars and lists) as TOML that `tomllib` reads back."""

from __future__ import annotations

import json
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(spec: dict[str, dict[str, Any]], comments: dict[str, str] | None = None) -> str:
    """TOML text for {table: {key: value}}; None values are left out (TOML has no null)."""
    comments = comments or {}
    lines: list[str] = []
    for table, body in spec.items():
        lines.append(f"[{table}]")
        for key, value in body.items():
            if value is None:
                continue
            note = comments.get(f"{table}.{key}")
            lines.append(f"{key} = {_value(value)}" + (f"  # {note}" if note else ""))
        lines.append("")
    return "\n".join(lines)
