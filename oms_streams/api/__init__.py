"""HTTP API served by every worker: availability, metrics, health, OpenAPI description."""
