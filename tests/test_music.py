"""The pickup rule and the counting of bars (folkrnn.music), which the grammar, the validator and the
form scanner all read."""

from __future__ import annotations

from fractions import Fraction

import pytest

from folkrnn.abc import parse
from folkrnn.form import form_of
from folkrnn.music import complement, completes, count_bars
from folkrnn.validate import validate_tune


@pytest.mark.parametrize("lengths, whole, answer", [
    ((2, 6), 8, True), ((6, 2), 8, True), ((1, 3, 4), 8, True),  # a pickup and its closing bar; three short bars
    ((2, 5), 8, False), ((8,), 8, False), ((0, 8), 8, False), ((4, 4), 0, False), ((3,), 3, False),
    ((Fraction(1, 3), Fraction(2, 3)), 1, True),
])
def test_completes(lengths, whole, answer):
    assert completes(lengths, whole) is answer


def test_complement():
    assert complement(2, 8) == 6 and complement(0, 8) == 8


@pytest.mark.parametrize("measures, bars", [
    ([(8, 8, 0)] * 4, 4),
    ([(2, 8, 0)] + [(8, 8, 0)] * 7 + [(6, 8, 0)], 8),  # a pickup and the bar completing it: one
    ([(4, 8, 0)] + [(8, 8, 0)] * 3, 3),  # a lone half-bar pickup counts none (rounded half down)
    ([(6, 8, 0)] + [(8, 8, 0)] * 3, 4),  # three quarters of a bar: one
    ([(32, 8, 4), (8, 8, 0)], 5),  # Z4: four bars of rest
    ([(5, 0, 0)] * 3, 3),  # free meter: one each
    ([(12, 8, 0)], 1),  # too long: one bar as written
])
def test_count_bars(measures, bars):
    assert count_bars(measures) == bars


def test_the_validator_and_the_form_scanner_count_alike():
    # a closing half bar with no pickup to complete: the validator counted it as a bar (rounding half
    # up) and the form scanner not (half down); both read folkrnn.music.count_bars now: 3
    text = "X:1\nT:t\nM:4/4\nL:1/8\nK:G\nB2c2 d2e2|f2g2 a2b2|g8|g4|]\n"
    form = form_of(parse(text))
    report = validate_tune(text)
    assert [p.bars for p in form.parts] == [3]
    assert [p["bars"] for p in report.structure["parts"]] == [3] and report.structure["bars"] == 3
