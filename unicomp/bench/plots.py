"""Rate–distortion plots (matplotlib's Agg canvas: no display, no global backend)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from unicomp.bench.summary import Curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Above this ratio of largest to smallest rate the rate axis is logarithmic.
LOG_AXIS_SPAN = 20.0


def rd_figure(curves: Sequence[Curve], rate_unit: str, metric: str, title: str) -> Figure | None:
    """``metric`` against rate for every curve; None if no curve has a finite point."""
    from matplotlib import figure as mpl_figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = mpl_figure.Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    rates: list[float] = []
    for curve in curves:
        points = sorted(
            (p.rate, p.metrics[metric])
            for p in curve.points
            if p.rate > 0 and math.isfinite(p.metrics.get(metric, math.nan))
        )
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        rates += xs
        axes.plot(xs, ys, marker="o", markersize=4, linewidth=1.5, label=curve.codec)
    if not rates:
        return None
    if max(rates) / min(rates) > LOG_AXIS_SPAN:
        axes.set_xscale("log")
    axes.set_xlabel(rate_unit)
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure
