"""Fit the two-tower model, evaluate it against the baselines on both protocols, refit for export.

Entry point: ``train_and_evaluate(data, cfg)``. The steps, each its own function:

1. cold start: fit on the users outside a held-out 20%, recommend to the held-out users from
   demographics only; then few-shot: the same users reveal their first n liked items (the
   same model, no refit: the item-item part folds them in);
2. warm: fit on every user's earlier 80% of ratings, recommend (seen items removed);
3. optionally refit on all the data: the model that gets exported.

What keeps a step's cost and the memory flat as users and items grow: batches stream from
per-example indices (``recsys.training_data``), the optimizer updates only the embedding rows
a batch used (``recsys.optimizers.LazyAdam``), evaluation scores a block of users at a time
and judges at most ``max_judged_users`` per protocol, and the item-item part is a sparse
top-width table (``recsys.item_item.cosine_table``); EASE, whose inverse is cubic in the
catalog, is left out past ``item_item.ease_max_items``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import polars as pl
import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.baselines import EASE, DemographicPopularity, ImplicitALS, ItemKNN, Popularity
from recsys.config import TrainConfig
from recsys.data import RecsysData
from recsys.evaluate import (
    COLD,
    FEWSHOT_SIZES,
    WARM,
    build_fewshot_protocol,
    build_protocol,
    evaluate,
    fewshot_table,
    ndcg_by_group,
    per_user_frame,
)
from recsys.features import (
    UNKNOWN_ID,
    Vocabularies,
    build_vocabularies,
    item_features,
    take,
    user_features,
)
from recsys.item_item import ItemItemModel, fit_item_item, liked_matrix
from recsys.model import TwoTowerModel
from recsys.optimizers import LazyAdam
from recsys.personalize import history_scores
from recsys.prior import demographic_log_prior
from recsys.splits import cold_start_split, warm_split
from recsys.towers import ItemTower, UserTower
from recsys.training_data import BatchStream, training_examples

logger = logging.getLogger(__name__)

_SCORING_BATCH = 4096
# Judged users in the per-epoch validation curve (all of them on MovieLens 100K); the full
# protocol is scored once, after training.
EPOCH_CURVE_USERS = 2_000
# EASE's l2 for the baselines, the best of 50-2000 on ML-100K: warm (seed-free split) and
# few-shot fold-in (seed 42), where a stronger pull toward popularity pays.
EASE_L2 = 200.0
EASE_FOLDIN_L2 = 2000.0


def _to_tensors(features: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
    return {
        name: tf.constant(values.astype(str) if values.dtype == object else values)
        for name, values in features.items()
    }


@dataclass
class TwoTowerRecommender:
    """A trained model with the vocabularies and catalog it was trained on.

    ``score`` / ``score_given`` follow the baselines' interface and blend in the item-item part
    exactly as ``recsys.personalize`` does at request time; ``user_vectors`` / ``item_vectors``
    and ``item_item`` are what the export writes.
    """

    model: TwoTowerModel
    vocab: Vocabularies
    users: pl.DataFrame  # the users known to the model (their ids are in the vocabulary)
    items: pl.DataFrame  # the catalog, in the order of item_vectors' rows
    item_item: ItemItemModel | None = None
    # The known users' liked training items: their history when they come back (warm).
    liked_history: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _item_vectors: np.ndarray | None = field(default=None, repr=False)

    def user_vectors(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """User-tower vectors for raw feature arrays (see ``recsys.features.user_features``)."""
        n = len(features["user_id"])
        out = [
            self.model.user_tower(_to_tensors(take(features, np.arange(s, min(n, s + _SCORING_BATCH))))).numpy()
            for s in range(0, n, _SCORING_BATCH)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.item_vectors().shape[1]), np.float32)

    def item_vectors(self) -> np.ndarray:
        if self._item_vectors is None:
            self._item_vectors = self.model.item_tower(_to_tensors(item_features(self.items, self.vocab))).numpy()
        return self._item_vectors

    def tower_scores(self, users: pl.DataFrame, use_history: bool = True) -> np.ndarray:
        """[n_users, n_items] two-tower scores alone; ``use_history=False`` drops the user id."""
        features = user_features(users)
        if not use_history:
            features["user_id"] = np.full_like(features["user_id"], UNKNOWN_ID)
        return self.user_vectors(features) @ self.item_vectors().T

    def score(self, users: pl.DataFrame, use_history: bool = True) -> np.ndarray:
        """[n_users, n_items] scores; ``use_history=False`` scores from demographics alone.

        With history, known users' liked training items join through the item-item part.
        """
        scores = self.tower_scores(users, use_history)
        if use_history and self.item_item is not None:
            empty = np.zeros(0, dtype=np.int64)
            liked = [self.liked_history.get(u, empty) for u in users["user_id"].to_list()]
            scores += history_scores(scores.shape[1], liked, item_item=self.item_item, known_user=True)
        return scores

    def score_given(self, users: pl.DataFrame, revealed: list[np.ndarray]) -> np.ndarray:
        """New people (demographics, no id) who liked ``revealed`` (catalog positions each)."""
        base = self.tower_scores(users, use_history=False)
        return base + history_scores(
            base.shape[1], revealed, item_item=self.item_item, known_user=False, item_vectors=self.item_vectors()
        )


def build_model(vocab: Vocabularies, cfg: TrainConfig) -> TwoTowerModel:
    """Towers and task, wired together and compiled."""
    task = tfrs.tasks.Retrieval(
        temperature=cfg.temperature if cfg.temperature != 1.0 else None,
        remove_accidental_hits=cfg.remove_accidental_hits,
    )
    model = TwoTowerModel(UserTower(vocab, cfg.tower), ItemTower(vocab, cfg.tower), task, use_logq=cfg.logq_correction)
    # Lazy: a step updates only the embedding rows its batch used (see recsys.optimizers).
    model.compile(optimizer=LazyAdam(learning_rate=cfg.learning_rate))
    return model


def fit_two_tower(
    train: RecsysData, cfg: TrainConfig, show_progress: bool = False, stage: str = "final", epoch_metric=None
) -> tuple[TwoTowerRecommender, list[dict]]:
    """Train a fresh model on ``train``; returns it and one history row per epoch.

    ``epoch_metric(recommender) -> float``, when given, is measured after every epoch and kept
    in the history as ``val_ndcg`` beside the loss, so the curves show when to stop.
    """
    # Keras initialisers draw from the global seeds; set them per fit so runs repeat.
    tf.keras.utils.set_random_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    vocab = build_vocabularies(train.users, train.items)
    model = build_model(vocab, cfg)
    # A plain loop over the batches: Keras' fit prepares (and, through its distribution layer,
    # rewrites) the dataset on every call, a cost that grows with the feature tables' size.
    train_step = tf.function(model.train_step)
    batches = BatchStream(train, vocab, training_examples(train, cfg), cfg)
    history = []
    epochs = range(cfg.epochs)
    if show_progress:
        from tqdm.auto import tqdm

        epochs = tqdm(epochs, desc=f"training ({stage})", unit="epoch")
    for epoch in epochs:
        start = time.perf_counter()
        model.mean_loss.reset_state()
        for batch in batches.epoch(rng):
            train_step(batch)
        row = {
            "stage": stage,
            "epoch": epoch + 1,
            # The task sums cross-entropy over a batch; per example reads the same at any batch size.
            "loss": float(model.mean_loss.result()) / batches.batch_size,
            "seconds": time.perf_counter() - start,
        }
        if epoch_metric is not None:
            row["val_ndcg"] = float(epoch_metric(TwoTowerRecommender(model=model, vocab=vocab, users=train.users, items=train.items)))
        history.append(row)
        logger.info("%s epoch %d: loss %.4f (%.1fs)", stage, row["epoch"], row["loss"], row["seconds"])
    _set_cold_start_prior(model, train, vocab, cfg)
    liked, user_row = liked_matrix(train, cfg.item_item.min_rating)
    liked_history = {u: liked.indices[liked.indptr[row]:liked.indptr[row + 1]].astype(np.int64) for u, row in user_row.items()}
    recommender = TwoTowerRecommender(
        model=model, vocab=vocab, users=train.users, items=train.items,
        item_item=fit_item_item(train, cfg.item_item), liked_history=liked_history,
    )
    return recommender, history


def _set_cold_start_prior(model: TwoTowerModel, train: RecsysData, vocab: Vocabularies, cfg: TrainConfig) -> None:
    """Fill the item tower's prior columns: weight x log p(item | age band x gender), in lookup order."""
    log_prior = demographic_log_prior(
        train, vocab, rating_weight_offset=cfg.rating_weight_offset,
        shrinkage=cfg.prior_shrinkage, neighbour_weight=cfg.prior_neighbour_weight,
        user_weight_exponent=cfg.prior_user_weight_exponent,
    )
    table = np.zeros((len(vocab.item_ids) + 1, log_prior.shape[0]), dtype=np.float32)
    # The item lookup puts vocab.item_ids[i] at row i + 1; row 0 (an unknown item) stays 0.
    rows = np.searchsorted(np.asarray(vocab.item_ids), train.items["item_id"].to_numpy()) + 1
    table[rows] = cfg.cold_start_prior_weight * log_prior.T
    model.item_tower.set_prior(table)


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produced, ready to log and export."""

    model: TwoTowerRecommender
    # "all" (refit on every interaction after evaluating) or "warm_split" (the warm model).
    model_trained_on: str
    history: list[dict]  # per epoch: stage, epoch, loss, seconds (and val_ndcg for cold/warm)
    metrics: dict[str, float]  # e.g. "cold.ndcg_at_10", "warm.recall_at_10", "seconds.total"
    baselines: dict[str, dict[str, float]]  # baseline name -> keys as in ``metrics``
    ndcg_by_group: pl.DataFrame  # protocol, age_band, gender, ndcg_at_10, n_users
    config: TrainConfig
    data_summary: dict[str, float]
    # protocol -> user_id, ndcg: per judged user, for paired comparisons between versions
    per_user_ndcg: dict[str, pl.DataFrame] = field(default_factory=dict)

    def config_dict(self) -> dict:
        return asdict(self.config)

    @property
    def fewshot(self) -> pl.DataFrame:
        """recommender, n (liked items revealed; 0 = cold start), ndcg_at_10, recall_at_10."""
        return fewshot_table(self.metrics, self.baselines, self.config.k)


def _prefixed(protocol: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{protocol}.{name}": value for name, value in metrics.items()}


def train_and_evaluate(data: RecsysData, cfg: TrainConfig, show_progress: bool = True) -> TrainingResult:
    """Evaluate on the cold-start and warm splits (model and baselines), then fit for export."""
    started = time.perf_counter()
    metrics: dict[str, float] = {}
    baselines: dict[str, dict[str, float]] = {}
    history: list[dict] = []
    groups = []
    per_user: dict[str, pl.DataFrame] = {}

    def score_all(protocol, recommender, fitted_baselines) -> None:
        evaluation = evaluate(recommender, protocol, cfg.k)
        per_user[protocol.name] = per_user_frame(protocol, evaluation)
        metrics.update(_prefixed(protocol.name, evaluation.metrics))
        if protocol.name in (COLD, WARM):
            groups.append(ndcg_by_group(protocol, evaluation, cfg.k))
        for baseline in fitted_baselines:
            result = evaluate(baseline, protocol, cfg.k)
            baselines.setdefault(baseline.name, {}).update(_prefixed(protocol.name, result.metrics))

    def judged(protocol):
        return protocol if cfg.max_judged_users is None else protocol.sample(cfg.max_judged_users)

    def run_protocol(name: str, split, baseline_models, fewshot_baselines=()) -> TwoTowerRecommender:
        """Fit on the split's training side, then score the model and the baselines on it
        (and, on a cold-start split, the few-shot protocols: the same users given n likes)."""
        t = time.perf_counter()
        protocol = judged(build_protocol(name, split, cfg.relevant_min_rating))
        curve = protocol.sample(EPOCH_CURVE_USERS)
        recommender, rows = fit_two_tower(
            split.train, cfg, show_progress, stage=name,
            epoch_metric=lambda model: evaluate(model, curve, cfg.k).metrics[f"ndcg_at_{cfg.k}"],
        )
        history.extend(rows)
        score_all(protocol, recommender, [b.fit(split.train) for b in baseline_models])
        if fewshot_baselines:
            fitted = [b if b in baseline_models else b.fit(split.train) for b in fewshot_baselines]
            for n in FEWSHOT_SIZES:
                protocol = judged(build_fewshot_protocol(split, n, cfg.relevant_min_rating))
                if protocol.users.height == 0:  # a small dataset: nobody liked more than n items
                    logger.info("few-shot n=%d skipped: no held-out user liked more than %d items", n, n)
                    continue
                score_all(protocol, recommender, fitted)
        metrics[f"seconds.{name}"] = time.perf_counter() - t
        return recommender

    def als(name: str) -> ImplicitALS:
        return ImplicitALS(
            factors=cfg.als_factors, regularization=cfg.als_regularization,
            iterations=cfg.als_iterations, alpha=cfg.als_alpha, random_state=cfg.seed, name=name,
        )

    # EASE inverts an items x items matrix: past ease_max_items it is left out (logged).
    with_ease = data.items.height <= cfg.item_item.ease_max_items
    if not with_ease:
        logger.info("EASE baselines skipped: %d items > item_item.ease_max_items (%d)", data.items.height, cfg.item_item.ease_max_items)

    def ease(l2: float, name: str) -> tuple:
        return (EASE(l2, cfg.relevant_min_rating, name=name),) if with_ease else ()

    # 1. Cold start: new visitors, judged from demographics alone; then given their first likes.
    demographic = DemographicPopularity()
    run_protocol(
        COLD, cold_start_split(data, cfg.holdout_share, random_state=cfg.split_seed),
        (Popularity(), demographic),
        fewshot_baselines=(
            demographic, ItemKNN(cfg.relevant_min_rating), *ease(EASE_FOLDIN_L2, "ease_foldin"), als("als_foldin"),
        ),
    )
    # 2. Warm: every user's later ratings, with ALS and EASE as the collaborative-filtering baselines.
    recommender = run_protocol(
        WARM, warm_split(data, cfg.holdout_share),
        (Popularity(), DemographicPopularity(), als("als"), *ease(EASE_L2, "ease")),
    )

    # 3. The model to export.
    trained_on = "warm_split"
    if cfg.refit_on_all_data:
        t = time.perf_counter()
        recommender, rows = fit_two_tower(data, cfg, show_progress, stage="final")
        history.extend(rows)
        trained_on = "all"
        metrics["seconds.refit"] = time.perf_counter() - t
    metrics["seconds.total"] = time.perf_counter() - started
    return TrainingResult(
        model=recommender,
        model_trained_on=trained_on,
        history=history,
        metrics=metrics,
        baselines=baselines,
        ndcg_by_group=pl.concat(groups),
        config=cfg,
        data_summary=data.summary(),
        per_user_ndcg=per_user,
    )
