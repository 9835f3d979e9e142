"""The auto-derived registry equations (``A.<layer>.<part>``) through ``derive check``:
each is proved against ``sympy.diff`` of its explicit layer at exact rational values, and
the re-derived paper layers equal the hand-encoded forms they match (C1-C5, C9-C11,
C24-C26, Eqs 27, 27.b).  The symbolic-mode proofs of the same forms are in
tests/test_deriver.py; this file is apart from tests/test_derive.py so that the two run
on different pytest-xdist workers."""

from __future__ import annotations

import pytest

from derive import all_equations
from derive.auto.match import MATCHES
from derive.selfcheck import run_checks

NUMBERS = [e.number for e in all_equations() if e.number.startswith("A.")]


@pytest.fixture(scope="module")
def auto_verdicts():
    return run_checks(NUMBERS, modes=["rational"])


def test_every_auto_derived_form_is_proved(auto_verdicts):
    assert {row.number for row in auto_verdicts} == set(NUMBERS)
    for row in auto_verdicts:
        assert row.printed.status == "proved", (row.number, row.printed.detail)


def test_the_re_derived_paper_layers_match_the_hand_encoded_forms(auto_verdicts):
    detail = {row.number: row.printed.detail for row in auto_verdicts}
    assert MATCHES
    for match in MATCHES:
        number = f"A.{match.layer}.{match.part}"
        assert f"equals {match.cites}" in detail[number], (number, detail[number])
