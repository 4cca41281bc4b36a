"""The data path's CPU placement: the decision (no processes) and its config key."""

from __future__ import annotations

import logging

import pytest

from leafnode.affinity import GATHER_BELOW, SPREAD_ABOVE, Placement, data_path_cpu
from leafnode.config import ConfigError, loads

ALL = frozenset({0, 1, 2, 3})
HOME = frozenset({3})


def test_auto_starts_on_the_highest_allowed_cpu() -> None:
    assert Placement(ALL).target("auto", None) == HOME
    assert Placement(frozenset({2, 5, 7})).target("auto", None) == frozenset({7})


def test_auto_spreads_when_busy_and_gathers_when_quiet_with_hysteresis() -> None:
    placement = Placement(ALL)
    placement.current = placement.target("auto", None)
    assert placement.target("auto", SPREAD_ABOVE - 0.01) == HOME
    placement.current = placement.target("auto", SPREAD_ABOVE + 0.01)
    assert placement.current == ALL
    # Between the two thresholds a process stays where it is, either way.
    middle = (SPREAD_ABOVE + GATHER_BELOW) / 2
    assert placement.target("auto", middle) == ALL
    placement.current = placement.target("auto", GATHER_BELOW - 0.01)
    assert placement.current == HOME
    assert placement.target("auto", middle) == HOME


def test_a_backlog_keeps_a_busy_process_spread_through_a_starved_sample() -> None:
    """Spread, a sample with a backlog reads as no quieter than the one before it."""
    placement = Placement(ALL)
    placement.current = ALL
    busy = SPREAD_ABOVE - 0.05
    starved = GATHER_BELOW / 2
    assert placement.target("auto", busy) == ALL
    # Behind and short of CPU: it stays spread...
    assert placement.target("auto", starved, backlog=True) == ALL
    # ...but two starved samples in a row read as quiet.
    assert placement.target("auto", starved, backlog=True) == HOME
    # The same starved sample without a backlog gathers it at once.
    placement = Placement(ALL)
    placement.current = ALL
    placement.target("auto", busy)
    assert placement.target("auto", starved) == HOME


def test_a_light_process_with_large_reads_still_gathers() -> None:
    """The uplink relaying the router's runs: large reads, little CPU."""
    placement = Placement(ALL)
    placement.current = ALL
    light = GATHER_BELOW / 4
    placement.target("auto", light, backlog=True)
    assert placement.target("auto", light, backlog=True) == HOME


def test_a_backlog_on_the_shared_cpu_spreads_at_once() -> None:
    placement = Placement(ALL)
    assert placement.target("auto", None, backlog=True) == HOME
    placement.current = HOME
    assert placement.target("auto", 0.0, backlog=True) == ALL
    assert placement.target("auto", 0.0) == HOME


def test_off_and_a_single_cpu_leave_the_kernel_in_charge() -> None:
    assert Placement(ALL).target("off", None) == ALL
    assert Placement(ALL).target("off", 0.0) == ALL
    one = frozenset({4})
    assert Placement(one).target("auto", None) == one
    assert Placement(one).target(4, 0.9) == one


def test_a_cpu_number_pins_whatever_the_load() -> None:
    placement = Placement(ALL)
    assert placement.target(1, None) == frozenset({1})
    assert placement.target(1, 1.0) == frozenset({1})


def test_a_cpu_outside_the_allowed_set_warns_once_and_is_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    placement = Placement(frozenset({0, 1}))
    with caplog.at_level(logging.WARNING, logger="leafnode.affinity"):
        assert placement.target(9, None) == frozenset({0, 1})
        assert placement.target(9, 0.1) == frozenset({0, 1})
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "data_path_cpu: CPU 9 is not one this process may run on (0,1); "
        "leaving placement to the kernel"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "auto"),
        ("data_path_cpu: auto", "auto"),
        ("data_path_cpu: AUTO", "auto"),
        ('data_path_cpu: "off"', "off"),
        ("data_path_cpu: off", "off"),
        ("data_path_cpu: false", "off"),
        ("data_path_cpu: 0", 0),
        ("data_path_cpu = 7", 7),
    ],
)
def test_config_key(text: str, expected: object) -> None:
    assert loads(text).data_path_cpu == expected


EXPECTED = "data_path_cpu: expected auto, off or a CPU number, got"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("data_path_cpu: -1", "data_path_cpu: must be at least 0, got -1"),
        ("data_path_cpu: fast", f"{EXPECTED} a string ('fast')"),
        ("data_path_cpu: true", f"{EXPECTED} a boolean (True)"),
        ("data_path_cpu: [1, 2]", f"{EXPECTED} an array"),
    ],
)
def test_config_key_errors_name_line_and_reason(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads("port: 4222\n" + text)
    assert str(info.value).startswith(f"<string>:2:1: {reason}")


def test_no_remote_no_data_path() -> None:
    assert data_path_cpu(loads("data_path_cpu: 1")) == "off"
    with_remote = 'data_path_cpu: 1\nleafnodes { remotes: [ { url: "nats://h:7422" } ] }'
    assert data_path_cpu(loads(with_remote)) == 1
