"""oms-streams: the event-driven core of an omnichannel order management system."""

from oms_streams.compiled import guard as _guard

__version__ = "0.1.0"

_guard()  # an optional mypyc build (`make compile`) must match its sources; see oms_streams/compiled.py
