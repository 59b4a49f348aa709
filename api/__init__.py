"""Monaco's HTTP API (Starlette) and its two back ends."""
