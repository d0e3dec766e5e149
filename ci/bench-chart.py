#!/usr/bin/env python3
"""Draws ci/bench.sh's figures as a grouped bar chart (SVG, no libraries).

    python3 ci/bench-chart.py POINTS.tsv OUT.svg "title"

POINTS.tsv has one line per bar: group <TAB> series <TAB> value (per second).
Groups are drawn in the order they first appear, each scaled to its own
largest bar (pipeline 1 and 16 differ tenfold), with every value written on
its bar.
"""

import sys
from html import escape

COLOURS = ["#2b6cb0", "#38a169", "#d69e2e", "#c53030", "#805ad5", "#718096", "#dd6b20", "#319795", "#b83280"]
BAR, GAP, GROUP_GAP, HEIGHT, TOP, LEFT = 26, 4, 34, 220, 56, 20


def read(path):
    groups, series = {}, []
    with open(path, encoding="utf-8") as points:
        for line in points:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or not parts[2]:
                continue
            group, name, value = parts
            try:
                value = float(value)
            except ValueError:
                continue
            groups.setdefault(group, {})[name] = value
            if name not in series:
                series.append(name)
    return groups, series


def human(value):
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.0f}k"
    return f"{value:.0f}"


def draw(groups, series, title):
    width = LEFT * 2 + sum(len(bars) * (BAR + GAP) + GROUP_GAP for bars in groups.values())
    legend_rows = (len(series) + 2) // 3
    total_height = TOP + HEIGHT + 60 + legend_rows * 18
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{total_height}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<text x="{LEFT}" y="40" fill="#4a5568">per second, higher is better; '
        "each group scaled to its own largest bar</text>",
    ]
    x = LEFT
    base = TOP + HEIGHT
    for group, bars in groups.items():
        top = max(bars.values()) or 1
        start = x
        for name in series:
            if name not in bars:
                continue
            value = bars[name]
            h = HEIGHT * value / top
            colour = COLOURS[series.index(name) % len(COLOURS)]
            out.append(f'<rect x="{x}" y="{base - h:.1f}" width="{BAR}" height="{h:.1f}" fill="{colour}">'
                       f"<title>{escape(group)}: {escape(name)} {value:.0f}/s</title></rect>")
            out.append(f'<text x="{x + BAR / 2}" y="{base - h - 4:.1f}" text-anchor="middle" '
                       f'font-size="9">{human(value)}</text>')
            x += BAR + GAP
        out.append(f'<text x="{(start + x - GAP) / 2}" y="{base + 16}" text-anchor="middle">'
                   f"{escape(group)}</text>")
        x += GROUP_GAP
    out.append(f'<line x1="{LEFT}" y1="{base}" x2="{width - LEFT}" y2="{base}" stroke="#a0aec0"/>')
    for i, name in enumerate(series):
        lx, ly = LEFT + (i % 3) * 260, base + 40 + (i // 3) * 18
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" '
                   f'fill="{COLOURS[i % len(COLOURS)]}"/>')
        out.append(f'<text x="{lx + 18}" y="{ly}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    groups, series = read(sys.argv[1])
    if not groups:
        sys.exit(f"no points in {sys.argv[1]}")
    with open(sys.argv[2], "w", encoding="utf-8") as svg:
        svg.write(draw(groups, series, sys.argv[3]))
    print(f"chart: {sys.argv[2]} ({len(groups)} groups, {len(series)} series)")


if __name__ == "__main__":
    main()
