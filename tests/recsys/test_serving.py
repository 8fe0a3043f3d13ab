import subprocess
import sys

import numpy as np
import pytest

from recsys.age_bands import AGE_BAND_LOWER_BOUNDS, AGE_BANDS, age_band
from recsys.serving import InvalidBundle, ServingBundle, _age_band, top_k, top_k_from_scores


def test_top_k_matches_a_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(7, 50)).astype(np.float32)
    indices, top = top_k_from_scores(scores, 5)
    expected = np.argsort(-scores, axis=1)[:, :5]
    assert np.array_equal(indices, expected)
    assert np.allclose(top, np.take_along_axis(scores, expected, axis=1))


def test_top_k_excludes_masked_items_and_pads():
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    # A per-row mask, given as 0/1 ints.
    indices, _ = top_k_from_scores(scores, 2, exclude=np.array([[1, 0, 0], [0, 0, 1]]))
    assert indices.tolist() == [[1, 2], [1, 0]]
    # A mask for every row; only one item is left, so the list is padded with -1.
    indices, top = top_k_from_scores(scores, 3, exclude=np.array([True, True, False]))
    assert indices.tolist() == [[2, -1, -1], [2, -1, -1]]
    assert np.isneginf(top[:, 1:]).all()
    # k larger than the catalog pads too.
    assert top_k_from_scores(scores, 5)[0].shape == (2, 5)


def test_chunked_top_k_equals_one_shot():
    rng = np.random.default_rng(1)
    users, items = rng.normal(size=(25, 4)), rng.normal(size=(30, 4))
    exclude = rng.random((25, 30)) < 0.3
    a = top_k(users, items, 6, exclude, chunk_size=4)
    b = top_k_from_scores(users @ items.T, 6, exclude)
    assert np.array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="same dimension"):
        top_k(users, items[:, :3], 2)


def test_serving_age_bands_agree_with_the_one_mapping():
    for age in (0, 5, 17, 18, 24.5, 25, 34, 35, 44, 45, 49, 50, 55, 56, 90, 1, 18, 25, 56, 120):
        assert _age_band(age, list(AGE_BAND_LOWER_BOUNDS), list(AGE_BANDS)) == age_band(age)
    assert _age_band(None, list(AGE_BAND_LOWER_BOUNDS), list(AGE_BANDS)) == ""
    assert _age_band(-3, list(AGE_BAND_LOWER_BOUNDS), list(AGE_BANDS)) == ""


def test_importing_serving_does_not_import_tensorflow():
    code = (
        "import sys; import recsys.serving, recsys.metrics, recsys.age_bands; "
        "bad = [m for m in ('tensorflow', 'tf_keras', 'tensorflow_recommenders', 'mlflow') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_loading_a_directory_without_a_bundle_says_so(tmp_path):
    with pytest.raises(InvalidBundle, match="manifest.json"):
        ServingBundle.load(tmp_path)
