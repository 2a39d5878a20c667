"""Bar charts as SVG drawn on the server: no script, no style attribute (the page's policy allows neither),
colours by class from the page's one stylesheet. Each chart names itself for screen readers and the page
prints its numbers beside it as a table."""

from __future__ import annotations

from html import escape

WIDTH = 640
HEIGHT = 180
LEFT = 36
BOTTOM = 28
TOP = 10


def bar_chart(title: str, labels: list[str], series: dict[str, list[int]], label_every: int = 1) -> str:
    """Grouped bars: one group per label, one bar per series (in the order given)."""
    names = list(series)
    peak = max([1, *(value for values in series.values() for value in values)])
    plot_width = WIDTH - LEFT - 8
    plot_height = HEIGHT - BOTTOM - TOP
    group = plot_width / max(1, len(labels))
    bar = max(1.0, (group - 2) / max(1, len(names)))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_height}" x2="{WIDTH - 8}" '
        f'y2="{TOP + plot_height}"/>',
    ]
    for tick in _ticks(peak):
        y = TOP + plot_height - tick / peak * plot_height
        parts.append(f'<text class="tick" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - 8}" y2="{y:.1f}"/>')
    for index, label in enumerate(labels):
        x0 = LEFT + index * group + 1
        for offset, name in enumerate(names):
            value = series[name][index]
            height = value / peak * plot_height
            parts.append(
                f'<rect class="s-{escape(name)}" x="{x0 + offset * bar:.1f}" '
                f'y="{TOP + plot_height - height:.1f}" width="{bar:.1f}" height="{height:.1f}">'
                f"<title>{escape(label)}: {value} {escape(name)}</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text class="tick" x="{x0 + group / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _ticks(peak: int) -> list[int]:
    if peak <= 4:
        return list(range(0, peak + 1))
    step = max(1, round(peak / 4))
    return list(range(0, peak + 1, step))
