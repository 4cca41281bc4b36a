"""``leafnode run`` reloads the router and the uplink in the order that loses nothing."""

from __future__ import annotations

import pytest

from leafnode.config import loads
from leafnode.supervisor import reload_order

ALL = ["store", "router", "uplink", "api"]


def site(*remotes: tuple[str, tuple[str, ...]]) -> str:
    entries = ", ".join(
        f'{{ name: {name}, url: "nats-leaf://hub:7422"'
        + (f", buffer {{ subjects: {list(subjects)!r} }}" if subjects else "")
        + " }"
        for name, subjects in remotes
    )
    return f"leafnodes {{ remotes: [ {entries} ] }}".replace("'", '"')


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # Nothing buffered changes: the router first, as at start.
        (site(("a", ("x.>",))), site(("a", ("x.>",))), ALL),
        # A subject becomes buffered: appends start before live copies stop.
        (site(("a", ("x.>",))), site(("a", ("x.>", "y.>"))), ALL),
        (
            site(
                ("a", ()),
            ),
            site(("a", ("y.>",))),
            ALL,
        ),
        # A subject stops being buffered: live copies start before appends stop.
        (site(("a", ("x.>", "y.>"))), site(("a", ("x.>",))), ["store", "uplink", "router", "api"]),
        (site(("a", ("x.>",))), site(("a", ())), ["store", "uplink", "router", "api"]),
        # A remote that buffered goes away, another one keeps the same subject.
        (
            site(("a", ("x.>",)), ("b", ("x.>",))),
            site(("b", ("x.>",))),
            ["store", "uplink", "router", "api"],
        ),
        # Both at once: the removal decides.
        (site(("a", ("x.>",))), site(("a", ("y.>",))), ["store", "uplink", "router", "api"]),
    ],
)
def test_order_follows_the_buffered_subjects(old: str, new: str, expected: list[str]) -> None:
    assert reload_order(loads(old), loads(new), ALL) == expected


def test_only_running_services_are_named() -> None:
    before = loads(site(("a", ("x.>",))))
    assert reload_order(before, loads(site(("a", ()))), ["router", "api"]) == ["router", "api"]
    assert reload_order(before, before, ["uplink", "router"]) == ["router", "uplink"]
