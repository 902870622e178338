"""The table the benchmark prints: one section per phase, each figure next to its reference and target."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    figure: str
    measured: str = ""
    reference: str = ""
    target: str = ""
    verdict: str = ""  # "met", "missed", "" (no target), or "not run"


@dataclass
class Report:
    sections: list[tuple[str, list[Row]]] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def section(self, title: str) -> list[Row]:
        rows: list[Row] = []
        self.sections.append((title, rows))
        return rows

    def render(self) -> str:
        headers = ("figure", "measured", "reference", "target", "")
        table = [headers]
        for title, rows in self.sections:
            table.append((title,))
            table += [(f"  {r.figure}", r.measured, r.reference, r.target, r.verdict) for r in rows]
            if not rows:
                table.append(("  (interrupted)", "", "", "", ""))
        widths = [max(len(line[i]) for line in table if len(line) > 1) for i in range(5)]
        out = []
        for line in table:
            if len(line) == 1:
                out.append(line[0])
            else:
                out.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
            if line is headers:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


def ms(seconds: float | None, digits: int = 1) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.{digits}f} ms"


def us(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e6:,.0f} µs"


def per_core(cpu_per_request: float | None) -> str:
    return "—" if not cpu_per_request else f"{1 / cpu_per_request:,.0f}"


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * p // 100)))
    return ordered[int(rank) - 1]
