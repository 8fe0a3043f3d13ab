"""Figures for a training run (matplotlib, Agg backend). They return Figures; the caller logs them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers; set here, not at package import

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure


def training_curve(history: list[dict]) -> Figure:
    """Loss per epoch, one line per training stage (cold, warm, final)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    stages = list(dict.fromkeys(row["stage"] for row in history))
    for stage in stages:
        rows = [r for r in history if r["stage"] == stage]
        ax.plot([r["epoch"] for r in rows], [r["loss"] for r in rows], marker="o", label=stage)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per example")
    ax.set_title("Training loss")
    if stages:
        ax.legend()
    fig.tight_layout()
    return fig


def ndcg_by_group(frame: pl.DataFrame, protocol: str = "cold", k: int = 10) -> Figure:
    """Bars of NDCG@k per age band, one bar per gender, for one protocol."""
    column = f"ndcg_at_{k}"
    rows = frame.filter(pl.col("protocol") == protocol) if "protocol" in frame.columns else frame
    bands = sorted(rows["age_band"].unique().to_list())
    genders = sorted(rows["gender"].unique().to_list())
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(genders))
    x = np.arange(len(bands))
    for i, gender in enumerate(genders):
        sub = dict(zip(*rows.filter(pl.col("gender") == gender).select("age_band", column).to_dict().values()))
        ax.bar(x + i * width, [sub.get(b, np.nan) for b in bands], width, label=gender or "unknown")
    ax.set_xticks(x + width * (len(genders) - 1) / 2, [b or "unknown" for b in bands])
    ax.set_xlabel("age band")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title(f"NDCG@{k} by age band and gender ({protocol})")
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
