"""`trainables.typed.upgrade`: a config or spec table written before a field existed reads
with the field's legacy value (a new one gets its default), and one holding a key that is
no field any more reads without it, with a warning."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from trainables import typed
from trainables.typed import setting


@dataclass
class Knobs:
    kept: int = setting("there from the start", default=1)
    added: str = setting("added later: 'new' for new studies, 'old' the behaviour before it",
                         default="new", legacy="old")
    listed: list[int] = setting("added later, a list", default_factory=list, legacy=[0])


def test_a_field_declared_with_legacy_takes_it_only_where_an_earlier_file_lacks_it():
    assert typed.build(Knobs, {}) == Knobs(1, "new", [])  # a new one: the defaults
    old = typed.upgrade(Knobs, {"kept": 2})
    assert old == {"kept": 2, "added": "old", "listed": [0]}
    assert typed.build(Knobs, old) == Knobs(2, "old", [0])
    assert typed.upgrade(Knobs, {"added": "new", "listed": []}) == {"added": "new",
                                                                    "listed": []}
    old["listed"].append(1)  # each upgrade its own copy of a mutable legacy value
    assert typed.upgrade(Knobs, {})["listed"] == [0]


def test_a_key_that_is_no_field_any_more_is_dropped_with_a_warning():
    with pytest.warns(UserWarning, match="ignored Knobs setting.s. retired of a file"):
        assert typed.upgrade(Knobs, {"kept": 3, "retired": True}) == {
            "kept": 3, "added": "old", "listed": [0]}
