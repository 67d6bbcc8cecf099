"""Inline SVG charts for the run report: drawn by the project, so the report needs no plotting library, no script
and no network, and stays a few hundred kilobytes however long the run was."""

from __future__ import annotations

from html import escape

import numpy as np

PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 900, 240, 46, 12, 12, 30


def timeline(series: dict[int, tuple[np.ndarray, np.ndarray]], duration: float, on: float, off: float,
             spans: list[tuple[float, float, str]], grey: bool = False) -> str:
    """p(fall) against time for each person (`series`: id -> (times, probs)), the on/off thresholds dashed and the
    fall events shaded (`spans`: start, end, label)."""
    duration = max(duration, 1e-3)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + plot_w * min(max(t / duration, 0.0), 1.0)

    def y(p: float) -> float:
        return TOP + plot_h * (1.0 - p)

    parts = [f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img">'
             '<title>p(fall) per person over time</title>',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>']
    for start, end, label in spans:
        parts.append(f'<rect class="event-span" x="{x(start):.1f}" y="{TOP}" width="{max(x(end) - x(start), 2):.1f}" '
                     f'height="{plot_h}" fill="#d62728" opacity="0.15"><title>{escape(label)}</title></rect>')
    for value, name in ((on, "on"), (off, "off")):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="#555" stroke-dasharray="5,4"/><text x="{WIDTH - RIGHT - 4}" y="{y(value) - 3:.1f}" '
                     f'font-size="11" text-anchor="end" fill="#555">{name} {value:g}</text>')
    for p in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{LEFT - 6}" y="{y(p) + 4:.1f}" font-size="11" text-anchor="end">{p:g}</text>')
    for i in range(6):
        t = duration * i / 5
        anchor = ("start", "middle", "middle", "middle", "middle", "end")[i]
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 10}" font-size="11" text-anchor="{anchor}">'
                     f'{clock(t)}</text>')
    for n, (pid, (times, probs)) in enumerate(sorted(series.items())):
        colour = "#999" if grey else PALETTE[n % len(PALETTE)]
        points = " ".join(f"{x(t):.1f},{y(p):.1f}" for t, p in zip(times, probs, strict=True))
        parts.append(f'<polyline class="person" data-id="{pid}" points="{points}" fill="none" stroke="{colour}" '
                     f'stroke-width="{1 if grey else 1.6}"><title>person #{pid}</title></polyline>')
    parts.append("</svg>")
    return "".join(parts)


def legend(ids: list[int]) -> str:
    return " ".join(f'<span class="key" style="border-color:{PALETTE[n % len(PALETTE)]}">#{pid}</span>'
                    for n, pid in enumerate(sorted(ids)))


def bars(values: dict[str, float], unit: str = "ms") -> str:
    """A small horizontal bar chart (per-stage mean milliseconds)."""
    if not values:
        return ""
    top, row = max(values.values()) or 1.0, 22
    height = row * len(values) + 6
    parts = [f'<svg class="bars" viewBox="0 0 520 {height}" width="520">']
    for i, (name, value) in enumerate(sorted(values.items(), key=lambda kv: -kv[1])):
        w = 330 * value / top
        parts.append(f'<text x="80" y="{i * row + 16}" font-size="12" text-anchor="end">{escape(name)}</text>'
                     f'<rect x="86" y="{i * row + 4}" width="{max(w, 1):.1f}" height="15" fill="#4c78a8"/>'
                     f'<text x="{92 + w:.1f}" y="{i * row + 16}" font-size="12">{value:.1f} {unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def clock(seconds: float) -> str:
    """h:mm:ss for long runs, m:ss.s for short ones."""
    seconds = max(float(seconds), 0.0)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h)}:{int(m):02d}:{int(s):02d}" if h else f"{int(m)}:{s:04.1f}"
