"""What the benchmark measures besides the clients' own timings: CPU used by each process, and py-spy profiles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench.processes import OUT, ROOT, Server, cpu_seconds, tree
from bench.report import Report


class Meter:
    """CPU seconds used on the whole machine, and by this benchmark's own processes, between snapshots.

    The machine is shared: whatever else ran during a phase ("other load") is reported with it.
    `redis` (the Redis server's process, when the service under test uses it) is shared too: its
    CPU includes whatever else uses that server meanwhile.
    """

    def __init__(self, server: Server, standin: psutil.Process, db_name: str,
                 redis: psutil.Process | None = None) -> None:
        self.server, self.standin, self.db_name, self.redis = server, standin, db_name, redis

    def _postgres_backends(self) -> float:
        backends = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] == "postgres" and self.db_name in " ".join(proc.info["cmdline"] or ()):
                backends.append(proc)
        return cpu_seconds(backends)

    def snapshot(self) -> dict[str, float]:
        machine = psutil.cpu_times()
        me = os.times()
        snapshot = {
            "wall": time.monotonic(),
            "busy": sum(getattr(machine, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal")),
            "server": self.server.cpu_seconds(),
            "stand-in": cpu_seconds(tree(self.standin)),
            "client": me.user + me.system + me.children_user + me.children_system,  # wrk, py-spy: waited children
            "postgres": self._postgres_backends(),
        }
        if self.redis is not None:
            snapshot["redis"] = cpu_seconds([self.redis])
        return snapshot

    @staticmethod
    def usage(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Cores used on average between the snapshots, by each and by everything else."""
        wall = max(after["wall"] - before["wall"], 1e-9)
        used = {key: (after[key] - before[key]) / wall for key in before if key != "wall"}
        used["other"] = max(0.0, used["busy"] - sum(v for k, v in used.items() if k != "busy"))
        return used

    @staticmethod
    def describe(used: dict[str, float]) -> str:
        keys = ("server", "postgres", *(("redis",) if "redis" in used else ()), "stand-in", "client", "other")
        parts = ", ".join(f"{key} {used[key]:.2f}" for key in keys)
        return f"cores used: {parts} (machine busy {used['busy']:.2f} of {os.cpu_count()})"


class Profiler:
    """py-spy on the worker while one phase runs: a flame graph (SVG) and collapsed stacks (raw)."""

    def __init__(self, phases: set[str], rate: int) -> None:
        self.phases, self.rate = phases, rate
        self.py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

    @contextlib.asynccontextmanager
    async def around(self, phase: str, pid: int, report: Report):
        if phase not in self.phases:
            yield
            return
        OUT.mkdir(parents=True, exist_ok=True)
        processes = []
        for fmt, suffix in (("flamegraph", "svg"), ("raw", "txt")):
            path = OUT / f"profile-{phase}.{suffix}"
            processes.append((path, subprocess.Popen(
                [self.py_spy, "record", "--pid", str(pid), "--rate", str(self.rate),
                 "--format", fmt, "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
            )))
        await asyncio.sleep(1.0)  # py-spy attaches
        try:
            yield
        finally:
            for path, process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
            for path, process in processes:
                try:
                    await asyncio.to_thread(process.wait, 30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                if path.exists():
                    report.notes.append(f"profile of {phase}: {path.relative_to(ROOT)}")
                else:
                    err = (process.stderr.read() or b"").decode(errors="replace").strip().splitlines()
                    report.notes.append(f"profile of {phase} failed: {err[-1] if err else process.returncode}")
