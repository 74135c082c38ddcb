"""Scatter-plot figures for reports: PNG (opens everywhere) and SVG (zooms), one layout.

The layout (panels side by side sharing one axis range, points mapped to pixels) is computed
once by :func:`scatter_layout`; :func:`scatter_svg` and :func:`scatter_png` only draw it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import torch
from torch import Tensor

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
PAD = 30

Panels = Sequence[tuple[str, Sequence[tuple[str, Tensor]]]]
"""``[(title, [(label, points (N, 2)), ...]), ...]``."""


@dataclass
class _Series:
    label: str
    colour: str
    pixels: list[tuple[float, float]]


@dataclass
class _Panel:
    x0: int
    title: str
    series: list[_Series] = field(default_factory=list)


@dataclass
class ScatterLayout:
    width: int
    height: int
    size: int
    panels: list[_Panel]


def scatter_layout(panels: Panels, *, size: int = 320, max_points: int = 2000) -> ScatterLayout:
    """Pixel positions of every point (the first ``max_points`` of each series), panels side by
    side sharing one axis range (the data's bounding box plus 10%)."""
    every = torch.cat([p[:, :2].double() for _, series in panels for _, p in series])
    lo, hi = every.min(0).values, every.max(0).values
    span = float((hi - lo).max()) * 1.1 or 1.0
    centre = (lo + hi) / 2
    layout = ScatterLayout(len(panels) * (size + PAD) + PAD, size + 2 * PAD, size, [])
    for i, (title, series) in enumerate(panels):
        panel = _Panel(PAD + i * (size + PAD), title)
        for j, (label, points) in enumerate(series):
            u = (points[:max_points, :2].double() - centre) / span + 0.5
            pixels = [(panel.x0 + px * size, PAD + (1 - py) * size) for px, py in u.tolist()]
            panel.series.append(_Series(label, PALETTE[j % len(PALETTE)], pixels))
        layout.panels.append(panel)
    return layout


def scatter_svg(panels: Panels, *, size: int = 320, max_points: int = 2000) -> str:
    """The scatter panels as SVG text (see :func:`scatter_layout`)."""
    layout = scatter_layout(panels, size=size, max_points=max_points)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width}" '
        f'height="{layout.height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{layout.width}" height="{layout.height}" fill="white"/>',
    ]
    for panel in layout.panels:
        out.append(f'<rect x="{panel.x0}" y="{PAD}" width="{size}" height="{size}" fill="none" '
                   'stroke="#999"/>')  # fmt: skip
        out.append(f'<text x="{panel.x0}" y="{PAD - 8}">{escape(panel.title)}</text>')
        for j, series in enumerate(panel.series):
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.2" fill="{series.colour}" '
                    'fill-opacity="0.5"/>' for x, y in series.pixels]  # fmt: skip
            out.append(f'<text x="{panel.x0 + 6}" y="{PAD + 16 + 14 * j}" '
                       f'fill="{series.colour}">{escape(series.label)}</text>')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)


def scatter_png(panels: Panels, *, size: int = 320, max_points: int = 2000) -> bytes:
    """The scatter panels as PNG bytes (Pillow), the same layout as :func:`scatter_svg`."""
    from PIL import Image, ImageDraw

    layout = scatter_layout(panels, size=size, max_points=max_points)
    image = Image.new("RGB", (layout.width, layout.height), "white")
    dots = Image.new("RGBA", image.size, (255, 255, 255, 0))
    draw, ink = ImageDraw.Draw(image), ImageDraw.Draw(dots)
    for panel in layout.panels:
        draw.rectangle((panel.x0, PAD, panel.x0 + size, PAD + size), outline="#999999")
        draw.text((panel.x0, PAD - 20), panel.title, fill="black")
        for series in panel.series:
            rgb = tuple(int(series.colour[k : k + 2], 16) for k in (1, 3, 5))
            for x, y in series.pixels:
                ink.ellipse((x - 1.2, y - 1.2, x + 1.2, y + 1.2), fill=(*rgb, 128))
    image = Image.alpha_composite(image.convert("RGBA"), dots)
    draw = ImageDraw.Draw(image)
    for panel in layout.panels:
        for j, series in enumerate(panel.series):
            draw.text((panel.x0 + 6, PAD + 6 + 14 * j), series.label, fill=series.colour)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
