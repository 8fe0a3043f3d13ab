"""Figures for a training run (matplotlib, Agg backend). They return Figures; the caller logs them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers; set here, not at package import

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure


TINY_GROUP = 10  # fewer judged users than this: the bar's mean is mostly noise


def training_curve(history: list[dict]) -> Figure:
    """Loss per epoch, one line per training stage (cold, warm, final), and beside it the
    held-out NDCG@10 per epoch where it was measured: where it stops rising is the epoch count."""
    has_val = any("val_ndcg" in r for r in history)
    fig, axes = plt.subplots(1, 2 if has_val else 1, figsize=(11 if has_val else 6, 4), squeeze=False)
    loss_ax = axes[0][0]
    stages = list(dict.fromkeys(row["stage"] for row in history))
    for stage in stages:
        rows = [r for r in history if r["stage"] == stage]
        loss_ax.plot([r["epoch"] for r in rows], [r["loss"] for r in rows], marker="o", label=stage)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss per example")
    loss_ax.set_title("Training loss")
    if stages:
        loss_ax.legend()
    if has_val:
        val_ax = axes[0][1]
        for stage in stages:
            rows = [r for r in history if r["stage"] == stage and "val_ndcg" in r]
            if rows:
                val_ax.plot([r["epoch"] for r in rows], [r["val_ndcg"] for r in rows], marker="o", label=stage)
        val_ax.set_xlabel("epoch")
        val_ax.set_ylabel("NDCG@10 on held-out users")
        val_ax.set_title("Evaluation metric per epoch")
        val_ax.legend()
    fig.tight_layout()
    return fig


def ndcg_by_group(frame: pl.DataFrame, protocol: str = "cold", k: int = 10) -> Figure:
    """Bars of NDCG@k per age band, one bar per gender, for one protocol.

    Each bar is labelled with its number of users; groups under TINY_GROUP users are hatched
    and labelled "tiny", because their means are mostly noise.
    """
    column = f"ndcg_at_{k}"
    rows = frame.filter(pl.col("protocol") == protocol) if "protocol" in frame.columns else frame
    bands = sorted(rows["age_band"].unique().to_list())
    genders = sorted(rows["gender"].unique().to_list())
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(1, len(genders))
    x = np.arange(len(bands))
    for i, gender in enumerate(genders):
        sub = {r["age_band"]: r for r in rows.filter(pl.col("gender") == gender).to_dicts()}
        heights = [sub[b][column] if b in sub else np.nan for b in bands]
        sizes = [sub[b]["n_users"] if b in sub and "n_users" in sub[b] else 0 for b in bands]
        bars = ax.bar(x + i * width, heights, width, label=gender or "unknown")
        for bar, height, n in zip(bars, heights, sizes):
            if np.isnan(height):
                continue
            tiny = n < TINY_GROUP
            if tiny:
                bar.set_hatch("//")
                bar.set_alpha(0.5)
            ax.annotate(f"n={n}" + (" tiny" if tiny else ""), (bar.get_x() + bar.get_width() / 2, height),
                        ha="center", va="bottom", fontsize=7, rotation=90 if len(genders) > 2 else 0)
    ax.set_xticks(x + width * (len(genders) - 1) / 2, [b or "unknown" for b in bands])
    ax.set_xlabel("age band")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title(f"NDCG@{k} by age band and gender ({protocol}); n = users judged, hatched = under {TINY_GROUP}")
    if genders:
        ax.legend(title="gender")
    fig.tight_layout()
    return fig


def fewshot_curve(metrics: dict[str, float], baselines: dict[str, dict[str, float]], k: int = 10) -> Figure:
    """NDCG@k against the number of liked items a new visitor revealed (0 = cold start), one
    line for the model and one per baseline with few-shot results."""
    import re

    pattern = re.compile(rf"^fewshot\.n(\d+)\.ndcg_at_{k}$")

    def curve(scores: dict[str, float]) -> tuple[list[int], list[float]]:
        points = sorted((int(m.group(1)), v) for key, v in scores.items() if (m := pattern.match(key)))
        if points and f"cold.ndcg_at_{k}" in scores:
            points.insert(0, (0, scores[f"cold.ndcg_at_{k}"]))
        return [n for n, _ in points], [v for _, v in points]

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, scores in {"model": metrics, **baselines}.items():
        x, y = curve(scores)
        if x:
            ax.plot(x, y, marker="o", label=name, linewidth=2.5 if name == "model" else 1.2)
    ax.set_xlabel("liked items revealed (0 = demographics only)")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title("Few-shot: new visitors given their first likes")
    if ax.lines:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
