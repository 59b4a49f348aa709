"""The embedded local back end: SQLite store, asyncio queue and workers, a daemonless sandbox."""
