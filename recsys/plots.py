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
