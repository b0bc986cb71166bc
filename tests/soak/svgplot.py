#!/usr/bin/python3
"""A tiny SVG plotter for the soak's CSV (no matplotlib here, and no pip): one panel per
measure (RSS in MiB, open descriptors, threads), one line per server, the warm-up shaded and
the early and late windows the verdict compares marked.

As a command: svgplot.py SOAK_CSV [OUT_SVG] [--warmup S]
"""

import csv
import html
import math
import sys
from typing import Dict, List, Optional, Sequence, Tuple

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
PANELS = (("rss_kib", "RSS (MiB)", 1 / 1024), ("fds", "open descriptors", 1.0), ("threads", "threads", 1.0))
WIDTH, PANEL_H, LEFT, RIGHT, TOP, GAP = 900, 220, 70, 170, 40, 50


def nice_ticks(lo: float, hi: float, n: int = 5) -> List[float]:
    """About n round tick values, the first at or below lo, the last at or above hi."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 or abs(v) >= 100 else f"{v:.1f}"


def read_csv(path: str) -> List[Dict[str, str]]:
    with open(path, encoding="ascii", newline="") as f:
        return list(csv.DictReader(f))


def stages_in(rows: List[Dict[str, str]]) -> List[str]:
    return [c[:-len("_rss_kib")] for c in rows[0] if c.endswith("_rss_kib")] if rows else []


def panel(out: List[str], y0: float, t: List[float], series: Dict[str, List[float]], label: str,
          t_max: float, warmup_s: Optional[float], windows: Sequence[Tuple[float, float]]) -> None:
    plot_w = WIDTH - LEFT - RIGHT
    values = [v for vs in series.values() for v in vs]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((hi - lo) * 0.08, abs(hi) * 0.02, 1.0)
    ticks = nice_ticks(lo - pad, hi + pad)
    lo, hi = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return LEFT + plot_w * v / t_max

    def y(v: float) -> float:
        return y0 + PANEL_H - PANEL_H * (v - lo) / (hi - lo)

    if warmup_s:
        out.append(f'<rect x="{x(0):.1f}" y="{y0}" width="{x(min(warmup_s, t_max)) - x(0):.1f}" '
                   f'height="{PANEL_H}" fill="#eeeeee"/>')
    for a, b in windows:
        out.append(f'<rect x="{x(a):.1f}" y="{y0}" width="{max(x(b) - x(a), 0):.1f}" height="{PANEL_H}" '
                   f'fill="#fff3c4" fill-opacity="0.6"/>')
    for (a, b), name in zip(windows, ("early", "late")):
        out.append(f'<text x="{(x(a) + x(b)) / 2:.1f}" y="{y0 + PANEL_H - 6}" text-anchor="middle" '
                   f'fill="#a08000">{name}</text>')
    out.append(f'<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#333"/>')
    for v in ticks:
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
    for v in nice_ticks(0, t_max, 8):
        if v <= t_max * (1 + 1e-9):
            out.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{y0 + PANEL_H}" y2="{y0 + PANEL_H + 4}" '
                       f'stroke="#333"/>')
            out.append(f'<text x="{x(v):.1f}" y="{y0 + PANEL_H + 16}" text-anchor="middle">{fmt(v)}</text>')
    out.append(f'<text x="{LEFT}" y="{y0 - 8}" font-weight="bold">{html.escape(label)}</text>')
    for i, (name, vs) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(t, vs))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        ly = y0 + 16 + 18 * i
        out.append(f'<line x1="{WIDTH - RIGHT + 12}" x2="{WIDTH - RIGHT + 32}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        last = f" {fmt(vs[-1])}" if vs else ""
        out.append(f'<text x="{WIDTH - RIGHT + 38}" y="{ly}">{html.escape(name)}{last}</text>')


def write_svg(csv_path: str, svg_path: str, stages: Optional[Sequence[str]] = None,
              warmup_s: Optional[float] = None, windows: Sequence[Tuple[float, float]] = (),
              title: str = "stagewise soak") -> None:
    rows = read_csv(csv_path)
    if not rows:
        raise ValueError(f"{csv_path}: no samples")
    stages = list(stages or stages_in(rows))
    t = [float(r["t_s"]) for r in rows]
    t_max = max([t[-1], 1.0] + [b for _, b in windows])
    height = TOP + len(PANELS) * (PANEL_H + GAP) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
           f'<text x="{WIDTH - RIGHT}" y="20" text-anchor="end" fill="#555">time under load (s); grey: '
           f'warm-up, yellow: windows compared</text>']
    for i, (key, label, scale) in enumerate(PANELS):
        series = {s: [float(r[f"{s}_{key}"]) * scale for r in rows] for s in stages}
        panel(out, TOP + 12 + i * (PANEL_H + GAP), t, series, label, t_max, warmup_s, windows)
    out.append("</svg>")
    with open(svg_path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def main(argv: List[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    warmup = None
    if "--warmup" in argv:
        warmup = float(argv[argv.index("--warmup") + 1])
        args.remove(argv[argv.index("--warmup") + 1])
    if not 1 <= len(args) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    svg = args[1] if len(args) == 2 else args[0].rsplit(".", 1)[0] + ".svg"
    write_svg(args[0], svg, warmup_s=warmup)
    print(svg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
