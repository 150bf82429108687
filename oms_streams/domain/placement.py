"""The checks a placement passes before any stock is reserved for it: its promise token (when keys
are configured: ``promise_token``), then per-order and per-line limits.

A placement refused here is answered ``rejected`` with the reason (round 0 on
``oms.orders.sourced.v1``): it never reaches the planner nor a ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from oms_streams.domain.promise_token import PromiseKeys


@dataclass(frozen=True, slots=True)
class PlacementLimits:
    max_lines: int = 100
    """Most cart lines (distinct SKUs) one order may have."""
    max_line_quantity: int = 1_000
    """Most units of one SKU one order may ask for."""
    promise_keys: PromiseKeys | None = None
    """The keys promise tokens are verified with; None: placements are not token-checked."""


def placement_problem(cart: Mapping[str, int], limits: PlacementLimits) -> str | None:
    """Why the cart (SKU -> units) may not reserve stock; None when it may.

    A SKU without stock is not refused here: it is sourced as out of stock (backordered). Whether
    a SKU is "known" cannot be told from the availability feed a worker follows: right after a
    restart the feed has not caught up, and real SKUs would be refused."""
    if len(cart) > limits.max_lines:
        return f"too many lines: {len(cart)} (at most {limits.max_lines} per order)"
    big = sorted(sku for sku, units in cart.items() if units > limits.max_line_quantity)
    if big:
        return f"quantity over the limit of {limits.max_line_quantity} units per line: " + ", ".join(
            f"{sku} x {cart[sku]}" for sku in big
        )
    return None
