"""Pure decisions: project model in, artifact recipes and workflow bindings out.

Nothing in this package does I/O or imports httpx, sqlite3 or watchdog; a test enforces it.
"""
