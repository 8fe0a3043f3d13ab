"""Training examples as a stream of batches: per example only indices, never feature values.

An epoch used to be materialised as feature arrays (ids, demographics and title tokens as
Python strings, per example: about 700 bytes each, 14.7 GiB at 20M interactions). Here an
example is its user's row and its item's row (int32 each), its weight (float32) and one byte of
dropout flags; the features themselves live once per user and once per item as tensors, and
each batch gathers its rows inside tf.data. Memory is about 13 bytes per example plus the
users' and items' features, whatever the epoch's size.

The random stream is numpy's, drawn per epoch in the same order as before (the permutation,
then the user-id, age, gender and occupation dropout draws), so a seed gives the same model.
"""

from __future__ import annotations

from dataclasses import dataclass

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import polars as pl
import tensorflow as tf

from recsys.config import TrainConfig
from recsys.data import RecsysData
from recsys.features import UNKNOWN, UNKNOWN_ID, Vocabularies, item_features, user_features
from recsys.model import SAMPLE_WEIGHT, SAMPLING_PROBABILITY

# Dropout flags, one bit per feature, in the order their draws are made.
_DROPPED = (("user_id", 1), ("age_band", 2), ("gender", 4), ("occupation", 8))


@dataclass(frozen=True)
class TrainingExamples:
    """Every (user, item) training example as rows of the feature tables, with its weight."""

    user_row: np.ndarray  # int32, row in ``train.users``
    item_row: np.ndarray  # int32, row in ``train.items``
    weight: np.ndarray  # float32, mean 1
    # Per item (catalog row): its share of the examples, the chance it shows up as an in-batch
    # negative (the logQ correction's sampling probability).
    item_probability: np.ndarray

    def __len__(self) -> int:
        return len(self.user_row)


def training_examples(train: RecsysData, cfg: TrainConfig) -> TrainingExamples:
    """The positives ``cfg`` trains on (see ``positive_min_rating``, ``rating_weight_offset``)."""
    interactions = train.interactions
    if cfg.positive_min_rating is not None:
        interactions = interactions.filter(pl.col("rating") >= cfg.positive_min_rating)
    if interactions.height == 0:
        raise ValueError(
            "no training interactions left"
            + (f" at rating >= {cfg.positive_min_rating}" if cfg.positive_min_rating is not None else "")
            + "; load interactions first or lower positive_min_rating"
        )
    user_row = _rows(train.users["user_id"], interactions["user_id"])
    item_row = _rows(train.items["item_id"], interactions["item_id"])
    weight = np.ones(len(user_row), dtype=np.float32)
    if cfg.rating_weight_offset is not None:
        weight = np.maximum(interactions["rating"].to_numpy() - cfg.rating_weight_offset, 0.0).astype(np.float32)
        keep = weight > 0
        if not keep.any():
            raise ValueError(
                f"every training interaction has weight 0 at rating_weight_offset={cfg.rating_weight_offset}; "
                "lower the offset"
            )
        user_row, item_row, weight = user_row[keep], item_row[keep], weight[keep]
        weight /= weight.mean()
    counts = np.bincount(item_row, minlength=train.items.height)
    return TrainingExamples(
        user_row=user_row, item_row=item_row, weight=weight,
        item_probability=(counts / len(item_row)).astype(np.float32),
    )


def _rows(keys: pl.Series, wanted: pl.Series) -> np.ndarray:
    """Row of each ``wanted`` id in ``keys`` (every id is known: ``RecsysData`` checked it)."""
    order = np.argsort(keys.to_numpy(), kind="stable")
    sorted_keys = keys.to_numpy()[order]
    return order[np.searchsorted(sorted_keys, wanted.to_numpy())].astype(np.int32)


class BatchStream:
    """Shuffled batches of one model's training examples, one ``tf.data.Dataset`` per epoch."""

    def __init__(self, train: RecsysData, vocab: Vocabularies, examples: TrainingExamples, cfg: TrainConfig) -> None:
        self._examples = examples
        self._cfg = cfg
        self._users = {name: tf.constant(_tensor_values(v)) for name, v in user_features(train.users).items()}
        self._items = {name: tf.constant(_tensor_values(v)) for name, v in item_features(train.items, vocab).items()}
        self._probability = tf.constant(examples.item_probability)
        # Full batches only: a short last batch would be a softmax over a handful of negatives.
        self.batch_size = min(cfg.batch_size, len(examples))

    def epoch(self, rng: np.random.Generator) -> tf.data.Dataset:
        """This epoch's batches; draws the shuffle and the feature dropout from ``rng``."""
        cfg, n = self._cfg, len(self._examples)
        order = rng.permutation(n)
        flags = np.zeros(n, dtype=np.uint8)
        rates = (cfg.user_id_dropout, cfg.demographic_dropout, cfg.demographic_dropout, cfg.occupation_dropout)
        for (_, bit), rate in zip(_DROPPED, rates):
            flags |= np.where(rng.random(n) < rate, bit, 0).astype(np.uint8)
        columns = (
            self._examples.user_row[order], self._examples.item_row[order], self._examples.weight[order], flags,
        )
        return (
            tf.data.Dataset.from_tensor_slices(columns)
            .batch(self.batch_size, drop_remainder=True)
            .map(self._features, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )

    def _features(self, user_row, item_row, weight, flags):
        features = {name: tf.gather(values, user_row) for name, values in self._users.items()}
        features.update({name: tf.gather(values, item_row) for name, values in self._items.items()})
        for name, bit in _DROPPED:
            dropped = tf.not_equal(tf.bitwise.bitwise_and(flags, bit), 0)
            blank = tf.constant(UNKNOWN_ID if name == "user_id" else UNKNOWN, dtype=features[name].dtype)
            features[name] = tf.where(dropped, blank, features[name])
        features[SAMPLING_PROBABILITY] = tf.gather(self._probability, item_row)
        features[SAMPLE_WEIGHT] = weight
        return features


def _tensor_values(values: np.ndarray) -> np.ndarray:
    return values.astype(str) if values.dtype == object else values
