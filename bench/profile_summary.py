"""Summarise a py-spy profile in collapsed-stack form (`py-spy record --format raw`, as bench.run writes).

    .venv/bin/python -m bench.profile_summary bench/out/profile-stream-1000.txt [--top 25]

Prints, as shares of the sampled (non-idle) time of the worker:
  - by library: each sample goes to the library of its innermost frame, standard-library frames
    (json, logging, asyncio, ...) being charged to the library that called them;
  - by stage of the service's work (STAGES below);
  - by service function: each sample goes to the innermost frame in samosachat_api/ (the code
    that caused the work), or to "(no service frame)" — e.g. Sanic's own request handling;
  - the top functions by self time and by inclusive time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")
STDLIB = {"asyncio", "json", "logging", "uuid", "datetime", "re", "enum", "typing", "collections", "functools",
          "contextvars", "hashlib", "dataclasses", "copy", "abc", "selectors", "socket", "ssl", "threading",
          "multiprocessing", "<frozen importlib._bootstrap>", "<string>", "traceback", "inspect", "weakref"}


def library(file: str) -> str:
    if file.startswith("<"):
        return "stdlib"
    if "/" not in file and not file.endswith(".py"):
        # Sanic's touch-up recompiles some hot methods (HttpProtocol.connection_task, Http.send,
        # Sanic.handle_request, the middleware runners) with the method's name as the file name.
        return "sanic" if file else "(unknown)"
    top = file.split("/", 1)[0].removesuffix(".py")
    return "stdlib" if top in STDLIB else top


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    samples = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for raw in stack.split(";"):
            match = FRAME.match(raw)
            frames.append((match["func"], match["file"]) if match else (raw, ""))
        samples.append((frames, int(count)))
    return samples


# Stages of this service's work, matched from the innermost frame outwards (the first match wins).
STAGES = [
    ("relay to the client (streaming.relay, Answer.follow)", re.compile(r"^(relay|Answer\.follow)$")),
    ("store the answer (messages.generation._store)", re.compile(r"^_store$")),
    ("read + parse the upstream stream (messages.generation._read)", re.compile(r"^_read$")),
    ("database before the upstream call (get, add_user_message, recent)",
     re.compile(r"^(get|add_user_message|recent|history_for_regenerate)$")),
    ("CRUD handlers (conversations/routes.py)",
     re.compile(r"^(list_conversations|get_conversation|create_conversation|rename_conversation|delete_conversation)$")),
    ("other request handling (Sanic, validation, auth, logging, metrics)",
     re.compile(r"^(handle_request|connection_task|Http\.http1)$")),
]


def stage_of(frames: list[tuple[str, str]]) -> str:
    for func, file in reversed(frames):
        for name, pattern in STAGES:
            if pattern.match(func) and (file.startswith("samosachat_api/") or "/" not in file):
                return name
    return "event loop and everything else"


def summarise(path: Path, top: int) -> str:
    samples = parse(path)
    total = sum(count for _, count in samples) or 1
    by_library, by_service, self_time, inclusive, stages = Counter(), Counter(), Counter(), Counter(), Counter()
    for frames, count in samples:
        stages[stage_of(frames)] += count
        func, file = frames[-1]
        self_time[f"{func} ({file})"] += count
        for name in {f"{f} ({fl})" for f, fl in frames}:
            inclusive[name] += count
        owner = next((library(fl) for _, fl in reversed(frames) if library(fl) not in ("stdlib",)), "stdlib")
        by_library[owner] += count
        service = next((f"{f} ({fl})" for f, fl in reversed(frames) if fl.startswith("samosachat_api/")), "(no service frame)")
        by_service[service] += count

    def table(title: str, counter: Counter, n: int) -> list[str]:
        lines = [f"{title}"]
        for name, count in counter.most_common(n):
            lines.append(f"  {count / total:6.1%}  {name}")
        return lines

    out = [f"{path}: {total} samples (non-idle)"]
    out += table("by stage (innermost matching frame):", stages, top)
    out += table("by library (standard-library frames charged to their caller):", by_library, top)
    out += table("by innermost samosachat_api frame:", by_service, top)
    out += table("top functions by self time:", self_time, top)
    out += table("top functions by inclusive time:", inclusive, top)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    for path in args.profiles:
        print(summarise(path, args.top))
        print()


if __name__ == "__main__":
    main()
