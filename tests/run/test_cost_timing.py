"""Tests for pipeline.run.cost (GPU price per hour) and pipeline.stages.timing (stage timers and their summary)."""

from __future__ import annotations

import datetime as dt
import random
import time
from types import SimpleNamespace

import pytest

from pipeline.errors import UsageError
from pipeline.run.cost import Price, price_table, resolve_price
from pipeline.stages.timing import STAGES, summarise, timed

# --------------------------------------------------------------------------- cost

CURRENCY, ROWS = price_table()


def test_cpu_run_costs_nothing():
    price = resolve_price(None)
    assert price.per_hour == 0.0
    assert price.currency == CURRENCY == "USD"
    assert "CPU" in price.source
    assert price.cost(3600) == 0.0


@pytest.mark.parametrize(
    ("gpu_name", "row"),
    [
        ("Tesla T4", "T4"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA A100-SXM4-40GB", "A100-SXM4-40GB"),
        ("NVIDIA A100 80GB PCIe", "A100"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H200", "H200"),
        ("nvidia h200", "H200"),
    ],
)
def test_gpu_name_picks_its_row(gpu_name, row):
    price = resolve_price(gpu_name)
    assert price.per_hour == ROWS[row]["price"]
    assert price.currency == CURRENCY
    assert price.source.startswith(f"{row}: ")
    assert ROWS[row]["source"] in price.source and str(ROWS[row]["date"]) in price.source


def test_the_two_a100_rows_differ():
    assert resolve_price("NVIDIA A100-SXM4-40GB").per_hour != resolve_price("NVIDIA A100 80GB PCIe").per_hour


def test_unknown_gpu_is_free_and_says_to_pass_a_price():
    price = resolve_price("NVIDIA GeForce RTX 4090")
    assert price.per_hour == 0.0
    assert "NVIDIA GeForce RTX 4090" in price.source
    assert "--gpu-price" in price.source


def test_explicit_price_and_currency_win():
    price = resolve_price("NVIDIA H200", 1.25, "eur")
    assert price == Price(1.25, "EUR", "--gpu-price")
    assert resolve_price(None, 0.8) == Price(0.8, CURRENCY, "--gpu-price")
    assert resolve_price("Tesla T4", 0.0).per_hour == 0.0


def test_table_currency_without_a_price_is_allowed():
    assert resolve_price("Tesla T4", None, CURRENCY.lower()).per_hour == ROWS["T4"]["price"]


def test_negative_price_is_a_usage_error():
    with pytest.raises(UsageError, match="-0.5") as info:
        resolve_price("Tesla T4", -0.5)
    assert info.value.exit_code == 2


def test_other_currency_without_a_price_is_a_usage_error():
    with pytest.raises(UsageError, match="EUR.*--gpu-price") as info:
        resolve_price("Tesla T4", None, "EUR")
    assert info.value.exit_code == 2


def test_every_table_row_is_complete():
    assert set(ROWS) >= {"T4", "L4", "A10G", "L40S", "A100-SXM4-40GB", "A100", "H100", "H200"}
    for key, row in ROWS.items():
        assert isinstance(row["price"], float | int) and row["price"] > 0, key
        assert isinstance(row["source"], str) and row["source"].strip(), key
        date = row["date"]
        if not isinstance(date, dt.date):
            date = dt.date.fromisoformat(date)
        assert dt.date(2020, 1, 1) <= date, key


def test_cost_of_an_hour_is_the_hourly_price():
    price = resolve_price("NVIDIA H200")
    assert price.cost(3600) == price.per_hour
    assert price.cost(1800) == pytest.approx(price.per_hour / 2)
    assert price.cost(0) == 0.0


# --------------------------------------------------------------------------- timing

HAND_MADE = [
    {"write": 1.0, "read": 2.0, "generate": 10.0},
    {"generate": 20.0, "read": 4.0, "write": 1.0},
    {"validate": 0.5, "read": 6.0},
]


def test_summarise_statistics():
    summary = summarise(HAND_MADE)
    assert summary["read"] == pytest.approx({"mean": 4.0, "p50": 4.0, "p95": 5.8, "share": 12.0 / 44.5})
    assert summary["generate"] == pytest.approx({"mean": 15.0, "p50": 15.0, "p95": 19.5, "share": 30.0 / 44.5})
    assert summary["write"] == pytest.approx({"mean": 1.0, "p50": 1.0, "p95": 1.0, "share": 2.0 / 44.5})
    assert summary["validate"] == pytest.approx({"mean": 0.5, "p50": 0.5, "p95": 0.5, "share": 0.5 / 44.5})


def test_summarise_shares_sum_to_one():
    rng = random.Random(1)
    timings = [{s: rng.uniform(0.01, 3.0) for s in STAGES if rng.random() < 0.8} for _ in range(25)]
    summary = summarise(timings)
    assert sum(stats["share"] for stats in summary.values()) == pytest.approx(1.0)
    assert sum(stats["share"] for stats in summarise(HAND_MADE).values()) == pytest.approx(1.0)


def test_summarise_puts_stages_in_flow_order_whatever_the_dict_order():
    rng = random.Random(2)
    for _ in range(10):
        timings = []
        for _ in range(4):
            stages = list(STAGES)
            rng.shuffle(stages)
            timings.append({s: rng.uniform(0.1, 1.0) for s in stages})
        assert list(summarise(timings)) == list(STAGES)
    assert list(summarise(HAND_MADE)) == ["read", "generate", "validate", "write"]


def test_summarise_puts_unknown_stages_last_sorted():
    summary = summarise([{"zeta": 1.0, "write": 1.0, "alpha": 1.0, "read": 1.0}])
    assert list(summary) == ["read", "write", "alpha", "zeta"]


def test_summarise_of_nothing():
    assert summarise([]) == {}
    assert summarise([{"read": 0.0}]) == {"read": {"mean": 0.0, "p50": 0.0, "p95": 0.0, "share": 0.0}}


def frame(**timings) -> SimpleNamespace:
    return SimpleNamespace(timings=dict(timings))


def test_timed_charges_each_frame_an_equal_share():
    frames = [frame(), frame()]
    start = time.perf_counter()
    with timed(frames, "generate"):
        time.sleep(0.02)
    outer = time.perf_counter() - start
    first, second = (f.timings["generate"] for f in frames)
    assert first == second
    assert first >= 0.01  # half of at least 0.02 s
    assert first + second <= outer
    assert first + second == pytest.approx(outer, abs=0.005)
    assert all(set(f.timings) == {"generate"} for f in frames)


def test_timed_adds_to_an_earlier_time_for_the_stage():
    frames = [frame(read=1.0), frame()]
    with timed(frames, "read"):
        time.sleep(0.02)
    assert frames[0].timings["read"] == pytest.approx(1.0 + frames[1].timings["read"])
    assert frames[1].timings["read"] >= 0.01


def test_timed_charges_even_when_the_stage_fails():
    frames = [frame(), frame(), frame()]
    with pytest.raises(ValueError, match="stage broke"):
        with timed(frames, "depth"):
            time.sleep(0.015)
            raise ValueError("stage broke")
    shares = [f.timings["depth"] for f in frames]
    assert shares[0] == shares[1] == shares[2] >= 0.005
    assert sum(shares) >= 0.015


def test_timed_with_no_frames_does_nothing():
    with timed([], "write"):
        pass
