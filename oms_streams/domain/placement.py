"""The checks a placement passes before any stock is reserved for it: limits and known SKUs.

A placement refused here is answered ``rejected`` with the reason (round 0 on
``oms.orders.sourced.v1``): it never reaches the planner nor a ledger.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlacementLimits:
    max_lines: int = 100
    """Most cart lines (distinct SKUs) one order may have."""
    max_line_quantity: int = 1_000
    """Most units of one SKU one order may ask for."""


def placement_problem(
    cart: Mapping[str, int], known_skus: Container[str], limits: PlacementLimits
) -> str | None:
    """Why the cart (SKU -> units) may not reserve stock; None when it may.

    A SKU the availability feed has never heard of is refused as unknown (a typo, a retired SKU, a
    forged option), not sourced as out of stock."""
    if len(cart) > limits.max_lines:
        return f"too many lines: {len(cart)} (at most {limits.max_lines} per order)"
    big = sorted(sku for sku, units in cart.items() if units > limits.max_line_quantity)
    if big:
        return f"quantity over the limit of {limits.max_line_quantity} units per line: " + ", ".join(
            f"{sku} x {cart[sku]}" for sku in big
        )
    unknown = sorted(sku for sku in cart if sku not in known_skus)
    if unknown:
        return f"unknown SKU {', '.join(unknown)}"
    return None
