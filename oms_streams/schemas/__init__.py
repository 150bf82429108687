"""Wire models (pydantic v2): one module per topic family, all events in an envelope."""
