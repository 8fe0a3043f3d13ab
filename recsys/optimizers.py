"""Adam whose cost per step follows the batch, not the size of the embedding tables.

tf_keras's Adam applies a sparse gradient (an embedding lookup's) by decaying both moments of
the WHOLE table and then adding the batch's rows: every step touches every user's and every
item's row, so a step's cost grows with users + items (measured: about 11 ms + 159 ns per id on
2 cores, so training time per example grew linearly with the catalog and the customer base).

``LazyAdam`` updates only the rows a batch used, the "lazy" variant of Adam that large
recommenders train embeddings with (TensorFlow Addons' LazyAdam, TF1's LazyAdamOptimizer): a
row's moments decay only on the steps that use it. Dense weights (the MLPs, the wide part's
small tables when they arrive dense) get ordinary Adam.
"""

from __future__ import annotations

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf


class LazyAdam(tf.keras.optimizers.Adam):
    """Adam with row-wise updates for ``tf.IndexedSlices`` gradients.

    The base optimizer has already summed duplicate rows (``_deduplicate_sparse_grad``) by the
    time ``update_step`` sees a sparse gradient, so each row is updated once per step.
    """

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        epsilon = self.epsilon * tf.sqrt(1 - tf.pow(beta_2, step)) if self.adaptive_epsilon else self.epsilon

        key = self._var_key(variable)
        m = self._momentums[self._index_dict[key]]
        v = self._velocities[self._index_dict[key]]
        rows, values = gradient.indices, gradient.values
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + epsilon), rows))
