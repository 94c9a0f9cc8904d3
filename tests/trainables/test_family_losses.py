"""Every family's losses, bit for bit, as the fixture recorded them (`family_losses`): the
family code may move, its numbers may not.

Bits hold only for the kernels that recorded them: torch and its BLAS pick kernels by the CPU
(AVX2 and AVX-512 reduce in different orders), so on another CPU model or capability than the
recording's the numbers are compared within 1e-4 (relative and absolute) instead, which still
catches a changed term but not a reassociated sum."""

from __future__ import annotations

import json

import pytest
import torch

from tests.trainables.family_losses import CASES, FIXTURE, case_name, cpu, record

SAVED = json.loads(FIXTURE.read_text())


@pytest.mark.parametrize(("family", "extra"), CASES, ids=[case_name(*c) for c in CASES])
def test_losses_are_bitwise_those_recorded(family, extra):
    if torch.__version__ != SAVED["torch"]:
        pytest.skip(f"recorded with torch {SAVED['torch']}, running {torch.__version__}")
    measured, saved = record(family, extra), SAVED["cases"][case_name(family, extra)]
    if cpu() == SAVED["cpu"]:
        assert measured == saved
        return
    assert measured.keys() == saved.keys()
    for key, values in saved.items():
        assert [float.fromhex(v) for v in measured[key]] == pytest.approx(
            [float.fromhex(v) for v in values], rel=1e-4, abs=1e-4), key


def test_every_case_is_recorded_once():
    assert sorted(SAVED["cases"]) == sorted(case_name(*c) for c in CASES)
