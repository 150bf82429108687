"""The operator console: server-rendered pages under ``/console/`` on every worker (htmx + SSE)."""
