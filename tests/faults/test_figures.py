"""The chaos figures' own arithmetic: what they call out of order, lost or a foreign id."""

from __future__ import annotations

from tests.support import Figures
from tests.support._chaos import out_of_order


def test_first_arrivals_decide_the_order() -> None:
    # A resent copy (p0-1 again after p0-2) is a duplicate, not a reordering.
    assert out_of_order([("p0", 0), ("p0", 1), ("p0", 2), ("p0", 1), ("p1", 0)]) == set()
    assert out_of_order([("p0", 0), ("p1", 5), ("p0", 2), ("p0", 1), ("p1", 6)]) == {"p0"}


def test_figures_are_ok_only_when_every_promise_held() -> None:
    assert Figures(acked=10).ok
    assert not Figures(lost=["p0-3"]).ok
    assert not Figures(out_of_order=["p1 (stream)"]).ok
    assert not Figures(foreign_ids=1).ok
    assert not Figures(stream_duplicates=1).ok
    text = Figures(lost=["p0-3"]).render()
    assert "acknowledged but lost        1" in text
    assert "p0-3" in text
