"""`python -m server.cli`, as the tests and benchmarks start the server."""

from . import app

app()
