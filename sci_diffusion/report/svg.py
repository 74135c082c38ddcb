"""Dependency-free SVG scatter plots for reports."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import torch
from torch import Tensor

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def scatter_svg(
    panels: Sequence[tuple[str, Sequence[tuple[str, Tensor]]]],
    *,
    size: int = 320,
    max_points: int = 2000,
) -> str:
    """Side-by-side scatter panels sharing one axis range.

    ``panels``: ``[(title, [(label, points (N, 2)), ...]), ...]``; returns the SVG text.
    """
    every = torch.cat([p[:, :2].double() for _, series in panels for _, p in series])
    lo, hi = every.min(0).values, every.max(0).values
    span = float((hi - lo).max()) * 1.1 or 1.0
    centre = (lo + hi) / 2
    pad = 30
    width = len(panels) * (size + pad) + pad
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{size + 2 * pad}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{size + 2 * pad}" fill="white"/>',
    ]
    for i, (title, series) in enumerate(panels):
        x0 = pad + i * (size + pad)
        out.append(f'<rect x="{x0}" y="{pad}" width="{size}" height="{size}" fill="none" '
                   'stroke="#999"/>')  # fmt: skip
        out.append(f'<text x="{x0}" y="{pad - 8}">{escape(title)}</text>')
        for j, (label, points) in enumerate(series):
            colour = PALETTE[j % len(PALETTE)]
            pts = points[:max_points, :2].double()
            u = (pts - centre) / span + 0.5
            for px, py in u.tolist():
                out.append(f'<circle cx="{x0 + px * size:.1f}" cy="{pad + (1 - py) * size:.1f}" '
                           f'r="1.2" fill="{colour}" fill-opacity="0.5"/>')  # fmt: skip
            out.append(f'<text x="{x0 + 6}" y="{pad + 16 + 14 * j}" fill="{colour}">'
                       f"{escape(label)}</text>")  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)
