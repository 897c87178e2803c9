"""Figures used by the notebooks. Each function draws on a new (or given) Axes and returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def heatmap(matrix, row_labels, col_labels, title: str = "", fmt: str = "{:.2f}", cmap: str = "viridis",
            vmin=None, vmax=None, ax=None, figsize=None):
    """Annotated heatmap (similarity matrices, language x task tables, per-domain scores)."""
    m = np.asarray(matrix, dtype=float)
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize or (1.0 + 0.75 * m.shape[1], 0.8 + 0.45 * m.shape[0]))
    else:
        fig = ax.figure
    im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(col_labels)), labels=col_labels, rotation=45, ha="right")
    ax.set_yticks(range(len(row_labels)), labels=row_labels)
    lo, hi = np.nanmin(m), np.nanmax(m)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                dark = (m[i, j] - lo) / ((hi - lo) or 1) < 0.5
                ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def grouped_bars(table: dict[str, dict[str, float]], title: str = "", ylabel: str = "score", ax=None,
                 reference: dict[str, dict[str, float]] | None = None, ylim=(0, 1)):
    """Grouped bar chart: ``table[series][group] = value`` (e.g. model -> task -> recall).

    ``reference`` (same shape) is drawn as black ticks, e.g. the paper's numbers.
    """
    series = list(table)
    groups = list(dict.fromkeys(g for s in series for g in table[s]))
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(series)) / 3), 4))
    else:
        fig = ax.figure
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, s in enumerate(series):
        vals = [table[s].get(g, np.nan) for g in groups]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=s)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        if reference and s in reference:
            for j, g in enumerate(groups):
                if g in reference[s]:
                    xx = x[j] + (i - (len(series) - 1) / 2) * width
                    ax.plot([xx - width / 2, xx + width / 2], [reference[s][g]] * 2, color="black", lw=2)
    ax.set_xticks(x, labels=groups)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=8, ncols=min(4, len(series)), loc="upper left", bbox_to_anchor=(0, -0.12))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def loss_curves(logs: dict[str, list[tuple[float, float]]], title: str = "training loss", ax=None, smooth: int = 5):
    """Loss curves: ``logs[name] = [(step, loss), ...]``, lightly smoothed (moving average)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    for name, pts in logs.items():
        if not pts:
            continue
        steps, loss = map(np.asarray, zip(*pts))
        if smooth > 1 and len(loss) > smooth:
            loss = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
            steps = steps[smooth - 1:]
        ax.plot(steps, loss, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def rank_frequency(counts: dict[str, list[int]], title: str = "positives per object (long tail)", ax=None):
    """Log-log rank/frequency plot of how many training pairs each object is the positive of."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    for name, c in counts.items():
        c = sorted(c, reverse=True)
        ax.loglog(np.arange(1, len(c) + 1), c, marker=".", lw=1, label=name)
    ax.set_xlabel("object rank")
    ax.set_ylabel("training pairs")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def scatter_cost_quality(points: dict[str, tuple[float, float]], xlabel: str, ylabel: str, title: str = "",
                         logx: bool = True, ax=None):
    """Cost vs quality: ``points[name] = (cost, quality)``, each point labelled."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    for name, (x, y) in points.items():
        ax.scatter([x], [y])
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


#: The x axes of :func:`learning_curves`: a curve point's key and its axis label.
CURVE_X = {"step": "optimizer steps", "train_seconds": "training seconds",
           "seconds": "training wall-clock seconds (cache build included)"}


def learning_curves(curves: dict[str, list[dict]], tasks=("step", "table", "field"), title: str = "",
                    x: str = "step"):
    """Dev recall per task against training steps (``x="step"``), training seconds (``x="train_seconds"``,
    evaluation excluded) or training wall-clock seconds (``x="seconds"``: ``train_seconds`` plus any one-time
    preparation of the run, the catalog recipe's lower-layer cache, as :mod:`helpers.sweep` records it): one
    panel per task, one line per run. ``curves[run]`` is a train log's ``learning_curve`` (points with
    ``step``, ``train_seconds`` and ``dev`` = {task: value}) or a sweep record's ``curve``."""
    if x not in CURVE_X:
        raise ValueError(f"x must be one of {', '.join(CURVE_X)}, got {x!r}")
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.2), sharey=False)
    for ax, task in zip(np.atleast_1d(axes), tasks):
        for name, points in curves.items():
            pts = [(p[x], p["dev"][task]) for p in points if task in p["dev"]]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", label=name)
        if x == "step":
            ax.set_xscale("symlog", linthresh=15)
        ax.set_xlabel(CURVE_X[x])
        ax.set_title(task)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("dev recall (sample)")
    np.atleast_1d(axes)[-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def merge_sweep(sweep, chosen: float | None = None, title: str = "", ax=None):
    """Dev recall against the merge weight w (0: the base, 1: the fine-tuned model), one line per task
    from a :class:`helpers.merge.MergeSweep`; the untrained workflow task dashed, ``chosen`` a vertical line."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
    else:
        fig = ax.figure
    for task in list(sweep.tasks) + [sweep.workflow_task]:
        ws, ys = zip(*sweep.curve(task))
        label = f"{task} {sweep.results[ws[0]][task]['label']}"
        untrained = task == sweep.workflow_task
        ax.plot(ws, ys, marker="o", linestyle="--" if untrained else "-",
                label=label + (" (untrained)" if untrained else ""))
    if chosen is not None:
        ax.axvline(chosen, color="black", linewidth=0.8, linestyle=":", label=f"chosen w = {chosen:g}")
    ax.set_xlabel("merge weight w  (0: base, 1: fine-tuned)")
    ax.set_ylabel(f"{sweep.split} recall")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
