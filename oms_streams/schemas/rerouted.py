"""The internal rerouted topics (``oms.*.rerouted.v1``): a record a producer placed outside its key's
partition, moved there byte for byte (``streaming/rerouting.py``). The value is the original record
of its family; the header ``oms-origin`` (``topic:partition:offset``) says which topic it is of."""

from __future__ import annotations

from pydantic import RootModel

from oms_streams.schemas.inventory import StockCount, StockMovement, SupplierStock
from oms_streams.schemas.orders import FulfilmentEvent, OrderPlaced
from oms_streams.schemas.returns import ReturnReceived, ReturnRequested


class ReroutedStockEvent(RootModel[StockMovement | StockCount | SupplierStock]):
    """A stock movement, count or supplier snapshot, as its producer wrote it."""


class ReroutedOrderEvent(RootModel[OrderPlaced | FulfilmentEvent]):
    """An order placement or fulfilment event, as its producer wrote it."""


class ReroutedReturnEvent(RootModel[ReturnRequested | ReturnReceived]):
    """A return announcement or receipt, as its producer wrote it."""
