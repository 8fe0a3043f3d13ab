"""The retrieval model: a wiring diagram from two towers to a TFRS retrieval task."""

from __future__ import annotations

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.features import ITEM_FEATURES, USER_FEATURES

# The batch key holding each positive item's sampling probability, for the logQ correction.
SAMPLING_PROBABILITY = "sampling_probability"
# The optional batch key holding each example's weight in the loss.
SAMPLE_WEIGHT = "sample_weight"


class TwoTowerModel(tfrs.Model):
    """Scores a (user, item) pair as the dot product of the two towers' vectors.

    The towers and the task come in through the constructor; swapping a tower means passing
    another one. ``use_logq`` says whether batches carry ``sampling_probability`` and the
    task should subtract its log from the in-batch logits.
    """

    def __init__(
        self,
        user_tower: tf.keras.Model,
        item_tower: tf.keras.Model,
        task: tfrs.tasks.Retrieval,
        use_logq: bool = True,
    ) -> None:
        super().__init__()
        self.user_tower = user_tower
        self.item_tower = item_tower
        self.task = task
        self.use_logq = use_logq
        # The epoch's mean batch loss (TFRS's own step reports the last batch's alone).
        self.mean_loss = tf.keras.metrics.Mean(name="loss")

    def train_step(self, inputs):
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            total_loss = loss + tf.add_n([tf.reduce_sum(term) for term in self.losses] or [tf.constant(0.0)])
        gradients = tape.gradient(total_loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        self.mean_loss.update_state(loss)
        return {"loss": self.mean_loss.result()}

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        user_vectors = self.user_tower({name: features[name] for name in USER_FEATURES})
        item_vectors = self.item_tower({name: features[name] for name in ITEM_FEATURES})
        return self.task(
            user_vectors,
            item_vectors,
            sample_weight=features.get(SAMPLE_WEIGHT),
            candidate_sampling_probability=features[SAMPLING_PROBABILITY] if self.use_logq else None,
            candidate_ids=features["item_id"],
            compute_metrics=False,
        )
