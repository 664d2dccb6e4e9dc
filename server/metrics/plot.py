"""The learning curve as a PNG: validation error of every model version against its labels.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, so concurrent requests
in threads do not share a figure); matplotlib is imported on first use, not at app start."""

from __future__ import annotations

import io
from collections.abc import Sequence

from server.metrics.schemas import CurvePoint


def learning_curve_png(points: Sequence[CurvePoint], metric: str, title: str) -> bytes:
    """One line of ``metrics[metric]`` against ``labelled_count`` (version order); the active
    version ringed. Versions without a finite value are left out; no points draws an empty
    frame that says so."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kept = [
        (p.labelled_count, float(p.metrics[metric]), p.version, p.is_active)
        for p in sorted(points, key=lambda p: p.version)
        if isinstance(p.metrics.get(metric), int | float) and p.metrics[metric] == p.metrics[metric]
    ]
    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if kept:
        xs, ys = [k[0] for k in kept], [k[1] for k in kept]
        axes.plot(xs, ys, marker="o", label=metric)
        for x, y, version, _active in kept:
            axes.annotate(
                f"v{version}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
        active = [(x, y) for x, y, _v, is_active in kept if is_active]
        if active:
            axes.scatter(
                [a[0] for a in active],
                [a[1] for a in active],
                s=140,
                facecolors="none",
                edgecolors="tab:red",
                label="active model",
                zorder=3,
            )
        axes.legend(loc="best")
    else:
        axes.text(
            0.5,
            0.5,
            f"no model version has {metric!r} yet",
            ha="center",
            va="center",
            transform=axes.transAxes,
        )
    axes.set_xlabel("labelled images")
    axes.set_ylabel(f"{metric} (validation split)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
