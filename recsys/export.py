"""Write a trained model as a serving bundle that ``recsys.serving`` reads with numpy alone.

The user tower's inputs are all categorical, so its output for a new visitor is one of finitely
many vectors: the export evaluates it for every (age band, gender, occupation) combination,
"unknown" included, and the serving side looks the vector up instead of running TensorFlow.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from recsys import serving
from recsys.age_bands import AGE_BAND_LOWER_BOUNDS, AGE_BANDS
from recsys.features import UNKNOWN, UNKNOWN_ID, user_features


def cold_start_table(recommender) -> np.ndarray:
    """[n_age_bands + 1, n_genders + 1, n_occupations + 1, dim]; index 0 on each axis is unknown."""
    vocab = recommender.vocab
    axes = [(UNKNOWN, *vocab.age_bands), (UNKNOWN, *vocab.genders), (UNKNOWN, *vocab.occupations)]
    grid = np.array(np.meshgrid(*[np.arange(len(a)) for a in axes], indexing="ij")).reshape(3, -1)
    features = {
        "user_id": np.full(grid.shape[1], UNKNOWN_ID, dtype=np.int64),
        "age_band": np.array(axes[0], dtype=object)[grid[0]],
        "gender": np.array(axes[1], dtype=object)[grid[1]],
        "occupation": np.array(axes[2], dtype=object)[grid[2]],
    }
    vectors = recommender.user_vectors(features)
    return vectors.reshape(*[len(a) for a in axes], vectors.shape[1]).astype(np.float32)


def export_bundle(result, out_dir: str | Path, version: str) -> Path:
    """Write ``result.model`` (a TrainingResult's model) to ``out_dir`` and return the path.

    Refuses a non-empty directory, so a bundle is never half-overwritten: give each version its
    own directory.
    """
    recommender = result.model
    if tuple(recommender.vocab.age_bands) != tuple(AGE_BANDS):
        raise ValueError(
            f"the model's age bands {recommender.vocab.age_bands} differ from recsys.age_bands "
            f"{AGE_BANDS}; retrain the model with the current code"
        )
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: expected a new directory for bundle version {version!r}")
    out.mkdir(parents=True, exist_ok=True)
    item_vectors = recommender.item_vectors().astype(np.float32)
    known = user_features(recommender.users)
    user_vectors = recommender.user_vectors(known).astype(np.float32)
    table = cold_start_table(recommender)
    np.save(out / serving.ITEM_IDS, recommender.items["item_id"].to_numpy().astype(np.int64))
    np.save(out / serving.ITEM_VECTORS, item_vectors)
    np.save(out / serving.USER_IDS, known["user_id"].astype(np.int64))
    np.save(out / serving.USER_VECTORS, user_vectors)
    np.save(out / serving.COLD_START_VECTORS, table)
    vocab = recommender.vocab.as_dict()
    item_item = getattr(recommender, "item_item", None)
    manifest = {
        "format_version": serving.FORMAT_VERSION,
        "version": version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dim": int(item_vectors.shape[1]),
        # The leading dimensions carry taste; then the item bias and the demographic prior's
        # columns (see recsys.towers), which item-to-item similarity must leave out.
        "taste_dims": int(result.config.tower.output_dim),
        "n_items": int(item_vectors.shape[0]),
        "n_users": int(user_vectors.shape[0]),
        "trained_on": result.model_trained_on,
        "age_band_lower_bounds": list(AGE_BAND_LOWER_BOUNDS),
        # Ids are in their own .npy files; the manifest keeps the readable vocabularies.
        "vocabularies": {k: v for k, v in vocab.items() if k not in ("user_ids", "item_ids")},
        "cold_start_axes": ["age_band", "gender", "occupation"],
        "metrics": {k: float(v) for k, v in result.metrics.items()},
    }
    if item_item is not None:
        # The item-item part (recsys.personalize): cosine and EASE tables and their blend weights.
        manifest["item_item"] = serving.save_item_item(out, item_item)
    (out / serving.MANIFEST).write_text(json.dumps(manifest, indent=2))
    serving.prepare_bundle(out)  # the approximate-retrieval index, for large catalogs only
    return out
