"""What a run costs: a GPU price per hour (given, or looked up by GPU name) times the time it held it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UsageError

PRICE_FILE = Path(__file__).resolve().parents[1] / "data" / "gpu_prices.toml"


@dataclass(frozen=True)
class Price:
    """A price per GPU-hour and where it came from."""

    per_hour: float
    currency: str
    source: str

    def cost(self, seconds: float) -> float:
        return self.per_hour * seconds / 3600.0


def price_table() -> tuple[str, dict[str, dict]]:
    """The table's currency and its rows, keyed by GPU name."""
    data = tomllib.loads(PRICE_FILE.read_text())
    return data["currency"], data["gpus"]


def lookup(gpu_name: str) -> tuple[str, dict] | None:
    """The table row whose key appears in the GPU's name, longest key first (A100-SXM4-40GB before A100)."""
    _, rows = price_table()
    name = gpu_name.upper()
    for key in sorted(rows, key=len, reverse=True):
        if key.upper() in name:
            return key, rows[key]
    return None


def resolve_price(gpu_name: str | None, price: float | None = None, currency: str | None = None) -> Price:
    """--gpu-price wins; else the table row for the GPU; else zero (a CPU run costs no GPU time)."""
    table_currency, _ = price_table()
    if price is not None:
        if price < 0:
            raise UsageError(f"--gpu-price must be >= 0, got {price}")
        return Price(price, (currency or table_currency).upper(), "--gpu-price")
    if currency and currency.upper() != table_currency:
        raise UsageError(f"--currency {currency} needs --gpu-price in that currency (the table is in {table_currency})")
    if gpu_name is None:
        return Price(0.0, table_currency, "CPU: no GPU price")
    row = lookup(gpu_name)
    if row is None:
        return Price(0.0, table_currency, f"{gpu_name}: not in the price table; pass --gpu-price")
    key, data = row
    return Price(float(data["price"]), table_currency, f"{key}: {data['source']} ({data['date']})")
