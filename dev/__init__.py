"""Running the chat API on a developer's machine, without the real auth and inference services.

    python -m dev [--port 8000]      the service on SQLite next to the stand-ins; prints a token

`standins.py`: stand-in auth and inference services (real HTTP servers that speak their contracts);
`processes.py`: the service and the stand-ins as real processes, started as a PaaS starts them.
The tests use both. Not part of the production package (it installs `samosachat_api` only).
"""
