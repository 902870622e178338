"""Running the chat API on a developer's machine, without the real auth and inference services.

    python -m dev [--port 8000] [--fresh]   the service on an embedded PostgreSQL next to the stand-ins

`standins.py`: stand-in auth and inference services (real HTTP servers that speak their contracts);
`processes.py`: the service and the stand-ins as real processes, started as a PaaS starts them;
`embedded.py`: PostgreSQL and Redis servers from pip packages. The tests and the bench use them. Not part of the production package (it installs `samosachat_api` only).
"""
