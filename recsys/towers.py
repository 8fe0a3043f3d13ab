"""Wide-and-deep towers. Each takes raw features (ids, strings); its first layers are lookups.

Wide part: linear terms on sparse features (a crossed age band x gender one-hot and the
occupation one-hot for users; the genre multi-hot and an item bias for items).
Deep part: the side features' embeddings concatenated through an MLP.
Id part: the id's embedding, added straight to the output (matrix factorisation's term).

Prior part: one column per age band x gender group (see ``recsys.prior``): the item tower holds
each group's log-popularity (set after training with ``ItemTower.set_prior``, zero until then),
the user tower the group's one-hot, for users without a known id only.

A feature the catalog does not have (no occupations, no genres, no title word shared by two
items) has an empty vocabulary: its lookup is left out and every row lands in the feature's
unknown slot, so the feature drops out of the tower instead of failing to build.

The tower's vector is id + deep + wide. Keeping the id out of the MLP is what makes cold start
work: the demographic terms learn from every example, and with the id dropped for a share of
examples (see ``TrainConfig.user_id_dropout``) they must explain the data on their own, so a new
visitor's vector (OOV id) is a trained estimate rather than an input the MLP rarely saw.
"""

from __future__ import annotations

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf

from recsys.config import TowerConfig
from recsys.features import UNKNOWN, Vocabularies


def _regularizer(cfg: TowerConfig):
    return tf.keras.regularizers.l2(cfg.l2) if cfg.l2 else None


def _mlp(cfg: TowerConfig, name: str) -> tf.keras.Sequential:
    layers = [
        tf.keras.layers.Dense(units, activation="relu", kernel_regularizer=_regularizer(cfg))
        for units in cfg.hidden_units
    ]
    layers.append(tf.keras.layers.Dense(cfg.output_dim, kernel_regularizer=_regularizer(cfg)))
    return tf.keras.Sequential(layers, name=name)


def _string_lookup(values: tuple[str, ...], **kwargs) -> tf.keras.layers.StringLookup | None:
    """A lookup for a feature's vocabulary; None when the catalog has no values for it."""
    if not values:
        return None
    return tf.keras.layers.StringLookup(vocabulary=list(values), **kwargs)


def _embedding(n: int, dim: int, cfg: TowerConfig, name: str, mask_zero: bool = False):
    return tf.keras.layers.Embedding(
        n, dim, embeddings_regularizer=_regularizer(cfg), mask_zero=mask_zero, name=name
    )


class UserTower(tf.keras.Model):
    """user_id, age_band, gender, occupation -> user vector (plus a constant 1 for the item bias)."""

    def __init__(self, vocab: Vocabularies, cfg: TowerConfig, **kwargs) -> None:
        super().__init__(**kwargs)
        self._cfg = cfg
        # num_oov_indices=1 puts every unknown value (a dropped or new user id, a blank
        # demographic) in slot 0, whose embedding training teaches to mean "unknown".
        self.user_lookup = tf.keras.layers.IntegerLookup(
            vocabulary=list(vocab.user_ids), mask_token=None, num_oov_indices=1
        )
        self.age_lookup = tf.keras.layers.StringLookup(vocabulary=list(vocab.age_bands), mask_token=None)
        self.gender_lookup = tf.keras.layers.StringLookup(vocabulary=list(vocab.genders), mask_token=None)
        self.occupation_lookup = _string_lookup(vocab.occupations, mask_token=None)
        self._n_genders = len(vocab.genders) + 1
        self.user_embedding = _embedding(len(vocab.user_ids) + 1, cfg.output_dim, cfg, "user_id")
        dim = cfg.feature_embedding_dim
        self.age_embedding = _embedding(len(vocab.age_bands) + 1, dim, cfg, "age_band")
        self.gender_embedding = _embedding(self._n_genders, dim, cfg, "gender")
        self.occupation_embedding = _embedding(len(vocab.occupations) + 1, dim, cfg, "occupation")
        self.deep = _mlp(cfg, "user_deep")
        # Wide: a one-hot times a weight matrix is an embedding lookup, so the linear terms on
        # the crossed and one-hot features are embeddings straight to the output dimension.
        self.wide_age_gender = _embedding(
            (len(vocab.age_bands) + 1) * self._n_genders, cfg.output_dim, cfg, "wide_age_x_gender"
        )
        self.wide_occupation = _embedding(len(vocab.occupations) + 1, cfg.output_dim, cfg, "wide_occupation")

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        user = self.user_lookup(features["user_id"])
        age = self.age_lookup(features["age_band"])
        gender = self.gender_lookup(features["gender"])
        occupation = (
            self.occupation_lookup(features["occupation"]) if self.occupation_lookup is not None
            else tf.zeros_like(age)
        )
        deep = self.deep(
            tf.concat(
                [self.age_embedding(age), self.gender_embedding(gender), self.occupation_embedding(occupation)],
                axis=-1,
            )
        )
        wide = self.wide_age_gender(age * self._n_genders + gender) + self.wide_occupation(occupation)
        vector = self.user_embedding(user) + deep + wide
        if self._cfg.item_bias:
            vector = tf.concat([vector, tf.ones_like(vector[:, :1])], axis=-1)
        # Slot 0 of the id lookup is the OOV id: a new visitor (or a dropped id in training).
        new_visitor = tf.cast(tf.equal(user, 0), vector.dtype)[:, None]
        group = tf.one_hot(age * self._n_genders + gender, self.n_prior_groups, dtype=vector.dtype)
        return tf.concat([vector, group * new_visitor], axis=-1)

    @property
    def n_prior_groups(self) -> int:
        return self.wide_age_gender.input_dim


class ItemTower(tf.keras.Model):
    """item_id, genres, year, title tokens -> item vector (plus the item's bias)."""

    def __init__(self, vocab: Vocabularies, cfg: TowerConfig, **kwargs) -> None:
        super().__init__(**kwargs)
        self._cfg = cfg
        self.item_lookup = tf.keras.layers.IntegerLookup(
            vocabulary=list(vocab.item_ids), mask_token=None, num_oov_indices=1
        )
        # Padding (UNKNOWN) is the mask token here, so multi-hot and pooling ignore it.
        self.genre_lookup = _string_lookup(vocab.genres, mask_token=UNKNOWN, output_mode="multi_hot")
        self.token_lookup = _string_lookup(vocab.title_tokens, mask_token=UNKNOWN)
        # A missing year is 0, below the first boundary: its own bucket.
        self.year_bucket = tf.keras.layers.Discretization(bin_boundaries=[float(b) for b in vocab.year_boundaries])
        n_items = len(vocab.item_ids) + 1
        dim = cfg.feature_embedding_dim
        self.item_embedding = _embedding(n_items, cfg.output_dim, cfg, "item_id")
        self.year_embedding = _embedding(len(vocab.year_boundaries) + 1, dim, cfg, "year")
        self.token_embedding = _embedding(len(vocab.title_tokens) + 2, dim, cfg, "title_token", mask_zero=True)
        has_genres = self.genre_lookup is not None
        self.genre_projection = tf.keras.layers.Dense(dim, use_bias=False, name="genre_embedding") if has_genres else None
        self.deep = _mlp(cfg, "item_deep")
        self.wide_genres = tf.keras.layers.Dense(cfg.output_dim, use_bias=False, name="wide_genres") if has_genres else None
        self.item_bias = _embedding(n_items, 1, cfg, "item_bias") if cfg.item_bias else None
        n_groups = (len(vocab.age_bands) + 1) * (len(vocab.genders) + 1)
        # Not trained: counted from the data after training (see set_prior).
        self.prior = tf.keras.layers.Embedding(n_items, n_groups, embeddings_initializer="zeros", trainable=False, name="prior")

    def set_prior(self, table) -> None:
        """[n_items + 1, n_groups] (lookup order, row 0 the OOV item): the prior columns' values."""
        expected = (self.prior.input_dim, self.prior.output_dim)
        if tuple(table.shape) != expected:
            raise ValueError(f"the prior table must have shape {expected} (got {tuple(table.shape)})")
        if not self.prior.built:
            self.prior.build((None,))
        self.prior.embeddings.assign(table)

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        item = self.item_lookup(features["item_id"])
        if self.token_lookup is not None:
            tokens = self.token_lookup(features["title"])
        else:  # no title tokens: every position is padding, so the title part is zero
            tokens = tf.zeros(tf.shape(features["title"]), dtype=tf.int64)
        token_vectors = self.token_embedding(tokens)
        token_mask = tf.cast(tokens > 0, token_vectors.dtype)[:, :, None]
        title = tf.reduce_sum(token_vectors * token_mask, axis=1) / tf.maximum(
            tf.reduce_sum(token_mask, axis=1), 1.0
        )
        year = self.year_embedding(self.year_bucket(features["year"]))
        if self.genre_lookup is None:
            deep = self.deep(tf.concat([year, title], axis=-1))
            vector = self.item_embedding(item) + deep
        else:
            # multi_hot keeps a column for the mask slot; drop it.
            genres = self.genre_lookup(features["genres"])[:, 1:]
            deep = self.deep(tf.concat([self.genre_projection(genres), year, title], axis=-1))
            vector = self.item_embedding(item) + deep + self.wide_genres(genres)
        if self.item_bias is not None:
            vector = tf.concat([vector, self.item_bias(item)], axis=-1)
        return tf.concat([vector, self.prior(item)], axis=-1)
