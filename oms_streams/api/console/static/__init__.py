"""The console's static files, served by the worker itself (no CDN): see VENDORED.md."""

from __future__ import annotations

from importlib import resources

HTMX = "htmx-2.0.11.min.js"
HTMX_SSE = "htmx-ext-sse-2.2.4.min.js"

CONTENT_TYPES = {
    HTMX: "text/javascript",
    HTMX_SSE: "text/javascript",
    "console.css": "text/css",
}
"""What may be fetched, and as what; nothing else under this folder is served."""


def read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()
