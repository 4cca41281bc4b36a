"""bench.run_all's one table: each benchmark's JSON -> rows with ratio, target and verdict.

The JSON documents here have the shapes the benchmarks write (their
``--json`` writers); a benchmark that changes its shape shows up as an
``n/a`` row, never as a wrong number.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.run_all import collect, headline, markdown


def _rows(bench: str, doc: object) -> dict[str, tuple[float | None, float | None, bool | None]]:
    return {f.metric: (f.leafnode, f.nats, f.met) for f in headline(bench, doc)}


def test_edge_buffer_ratio_is_full_against_jetstream() -> None:
    doc = {
        "size": 16,
        "results": [
            {"name": "nats-server", "append_msgs_per_sec": 200_000.0},
            {"name": "leafnode FULL", "append_msgs_per_sec": 100_000.0},
            {"name": "leafnode NORMAL", "append_msgs_per_sec": 150_000.0},
        ],
    }
    (row,) = [f for f in headline("edge_buffer_bench", doc) if "FULL" in f.metric]
    assert (row.leafnode, row.nats, row.ratio, row.target, row.met) == (
        100_000.0,
        200_000.0,
        0.5,
        ">= 1x",
        False,
    )


def test_router_rows_and_their_targets() -> None:
    meds = {
        "pubsub": {"leafnode": {"msgs_per_sec": 600.0}, "nats-server": {"msgs_per_sec": 1000.0}},
        "reqrep": {
            "leafnode": {"p50_us": 110.0, "p99_us": 300.0},
            "nats-server": {"p50_us": 100.0, "p99_us": 200.0},
        },
    }
    doc = {
        "workloads": [
            {"key": "pubsub", "mode": "pubsub", "title": "1:1", "medians": meds["pubsub"]},
            {"key": "reqrep", "mode": "reqrep", "title": "req", "medians": meds["reqrep"]},
        ]
    }
    rows = _rows("router_bench", doc)
    assert rows["local 1:1 pub/sub, 16 B"] == (600.0, 1000.0, True)  # 0.6x >= 0.5x
    assert rows["local request/reply p50"] == (110.0, 100.0, True)  # 1.1x <= 1.2x
    assert rows["local request/reply p99"] == (300.0, 200.0, None)  # no target


def test_uplink_takes_the_median_of_the_repetitions() -> None:
    raw = {
        "leaf->hub": {"nats-server": [100.0, 300.0, 200.0], "leafnode": [50.0, 80.0, 60.0]},
        "hub->leaf": {"nats-server": [100.0], "leafnode": [90.0]},
        "p50": {"nats-server": [100.0, 100.0], "leafnode": [130.0, 110.0]},
    }
    rows = _rows("uplink_bench", {"raw": raw})
    assert rows["leaf -> hub, 16 B"] == (60.0, 200.0, False)
    assert rows["hub -> leaf, 16 B"] == (90.0, 100.0, True)
    assert rows["round trip through the hub p50"] == (120.0, 100.0, True)


def test_store_target_is_an_absolute_rate() -> None:
    doc = {"results": [{"backend": "sqlite-full", "size": 16, "msgs_per_s": 260_000}]}
    assert _rows("store_bench", doc) == {"append 16 B, sqlite-full": (260_000.0, None, True)}


def test_a_headline_list_is_taken_as_written() -> None:
    doc = {
        "headline": [
            {"metric": "m", "unit": "MB", "leafnode": 90.0, "nats": 10.0, "target": "<= 80 MB",
             "met": False}
        ]
    }  # fmt: skip
    (row,) = headline("site_bench", doc)
    assert (row.metric, row.leafnode, row.nats, row.ratio, row.target, row.met) == (
        "m",
        90.0,
        10.0,
        9.0,
        "<= 80 MB",
        False,
    )


def test_a_changed_shape_is_na_not_a_number() -> None:
    (row,) = headline("uplink_bench", {"rows": []})
    assert row.leafnode is None
    assert row.met is None
    assert "KeyError" in row.note


def test_the_table_names_the_machine_and_each_failure(tmp_path: Path) -> None:
    doc = {"results": [{"backend": "sqlite-full", "size": 16, "msgs_per_s": 100_000}]}
    (tmp_path / "store.json").write_text(json.dumps(doc))
    runs: list[dict[str, object]] = [
        {"bench": "store_bench", "exit": 0, "load": [1.0, 2.5], "log": "x",
         "json": str(tmp_path / "store.json")},
        {"bench": "replay_bench", "exit": 1, "load": [2.0, 2.0], "log": "replay.log",
         "json": None},
    ]  # fmt: skip
    figures = collect(runs)
    info = {"cpu": "Some CPU", "cores": 2, "python": "3.11", "nats_server": "nats-server: v2"}
    table = markdown(figures, info, runs)
    assert "Some CPU, 2 cores" in table
    assert "load average (1 min) 1.0-2.5" in table
    row = "| store_bench | append 16 B, sqlite-full (msgs/s) | 100,000 |  |  |"
    assert f"{row} >= 250000 msgs/s | **no** |" in table
    assert "replay_bench: exit 1 (log: replay.log)" in table
