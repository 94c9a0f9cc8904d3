"""Every family's losses, bit for bit, as the fixture recorded them (`family_losses`): the
family code may move, its numbers may not."""

from __future__ import annotations

import json

import pytest
import torch

from tests.trainables.family_losses import CASES, FIXTURE, case_name, record

SAVED = json.loads(FIXTURE.read_text())


@pytest.mark.parametrize(("family", "extra"), CASES, ids=[case_name(*c) for c in CASES])
def test_losses_are_bitwise_those_recorded(family, extra):
    if torch.__version__ != SAVED["torch"]:
        pytest.skip(f"recorded with torch {SAVED['torch']}, running {torch.__version__}")
    assert record(family, extra) == SAVED["cases"][case_name(family, extra)]


def test_every_case_is_recorded_once():
    assert sorted(SAVED["cases"]) == sorted(case_name(*c) for c in CASES)
