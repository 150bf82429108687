"""Cart holds: a checkout's soft reservation of the chosen option's stock, until an order takes it
over or it expires.

- ``POST /holds`` takes a ``HoldRequest``; the worker sends the hold's reserve commands to the SKUs'
  ledgers (``oms.inventory.reservations.v2``, reservation id = hold id) and writes the request itself
  to ``oms.holds.v1``.
- ``oms.holds.v1`` (compacted): the request (key '<hold id>', ``sku`` null, every SKU named) and each
  ledger's latest word on its SKU (key '<hold id>|<sku>'): held, refused, released, expired or taken
  over. A hold spans SKUs that different ledgers own, so each writes its own record; every worker
  follows the topic and puts the hold together (``GET /holds/{hold_id}`` on any worker).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from oms_streams.schemas.envelope import Envelope, Identifier, WireModel
from oms_streams.schemas.promise import DeliveryOptionModel, DestinationModel

HoldId = Annotated[str, Field(pattern=r"^hold-[A-Za-z0-9-]{1,64}$", description="'hold-<uuid>'.")]
HoldStatus = Literal["requested", "held", "refused", "released", "expired", "taken_over"]
MAX_TTL_S = 86_400


class HoldLineModel(WireModel):
    sku: Identifier
    location_id: Identifier
    quantity: Annotated[int, Field(ge=1, le=1_000_000)]


class HoldRequest(WireModel):
    """The body of ``POST /holds``: the chosen option as ``POST /promise`` returned it (with its
    ``promise_token``, and the ``destination`` it was promised for), or its lines per location.
    When the OMS has a signing key (``OMS_PROMISE_SIGNING_KEYS``) only the option with a valid token
    is accepted: the hold holds what the OMS promised, nothing else."""

    channel: Annotated[str, Field(min_length=1, max_length=64)] = "webshop"
    lines: Annotated[list[HoldLineModel], Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="The units to hold per location (give these or the option)."
    )
    option: DeliveryOptionModel | None = Field(
        default=None, description="The chosen option as POST /promise returned it: its lines are held."
    )
    destination: DestinationModel | None = Field(
        default=None, description="With the option: the home (or pickup store) it was promised for."
    )
    ttl_s: Annotated[int, Field(ge=1, le=MAX_TTL_S)] | None = Field(
        default=None, description="How long the hold lasts; default: the channel's (OMS_HOLD_TTL_S)."
    )


class HoldRecord(Envelope):
    """The request of a hold (``sku`` null), or one ledger's latest word on one of its SKUs."""

    hold_id: HoldId
    sku: Identifier | None = None
    status: HoldStatus
    channel: Annotated[str, Field(max_length=64)]
    expires_at: AwareDatetime
    lines: list[HoldLineModel] = Field(
        description="The request: every line. A SKU's record: the units held, released, expired or "
        "taken over at each location (asked for, when refused)."
    )
    skus: list[Identifier] = Field(default=[], description="The request: every SKU of the hold.")
    order_id: Identifier | None = Field(default=None, description="taken_over: the order that took it.")
    reason: str = ""
