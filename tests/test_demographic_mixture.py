"""Uncertainty carried into the list: weights over age bands and genders, their mixture of cold-start
vectors, and the selfie paths that use it. Numbers worked out by hand on the 2-D bundle of
serving_fixtures (F -> romance [0, 1], M -> action [1, 0], unknown -> [0.5, 0.5])."""

import json

import numpy as np
import polars as pl
import pytest

from pipelines.batch_score import batch_score
from pipelines.demographic_mixture import MixturePolicy, band_weights, gender_weights, mixture_weights
from pipelines.recommend import recommend_for_demographics
from pipelines.rules import CampaignRules
from pipelines.selfie import demographic_weights, recommend_for_face
from recsys.serving import ServingBundle
from serving_fixtures import make_home, write_bundle
from vision.types import AgeEstimate, Box, DetectedFace, FaceProfile, GenderEstimate, Landmarks, Point


def face(age: float, spread: float, gender: str, probability: float) -> FaceProfile:
    p = Point(0, 0)
    detected = DetectedFace(Box(0, 0, 100, 100), 0.99, Landmarks(p, p, p, p, p))
    return FaceProfile(detected, AgeEstimate(age, spread, age), GenderEstimate(gender, probability), low_quality=False)


def test_a_sharp_estimate_mid_band_keeps_one_band():
    # Normal(30, 2): P(25..35) = 0.988; each neighbour 0.006, under the 0.15 floor.
    assert band_weights(30, 2) == {"25-34": 1.0}
    assert band_weights(30, 0) == {"25-34": 1.0}


def test_a_spread_estimate_on_a_band_edge_splits():
    # Normal(25, 4): P(<18) = 0.040, P(18..25) = 0.460, P(25..35) = 0.494, P(>35) = 0.006;
    # the two under 0.15 are dropped, the rest renormalised over 0.954.
    weights = band_weights(25, 4)
    assert weights.keys() == {"18-24", "25-34"}
    assert weights["18-24"] == pytest.approx(0.460 / 0.954, abs=2e-3)
    assert weights["25-34"] == pytest.approx(0.494 / 0.954, abs=2e-3)


def test_gender_weights_follow_the_threshold_and_the_child_rule():
    assert gender_weights(0.9, 30) == {"F": 1.0}
    assert gender_weights(0.1, 30) == {"M": 1.0}
    assert gender_weights(0.6, 30) == pytest.approx({"F": 0.6, "M": 0.4})
    assert gender_weights(0.6, 30, MixturePolicy(unsure_gender="unknown")) == {"": 1.0}
    assert gender_weights(0.95, 8) == {"": 1.0}
    with pytest.raises(ValueError, match="female probability"):
        gender_weights(1.5, 30)


def test_mixture_vector_is_the_weighted_cold_start_vectors(tmp_path):
    bundle = ServingBundle.load(write_bundle(tmp_path / "b", 1))
    np.testing.assert_allclose(bundle.vector_for_demographic_mixture({"25-34": 1.0}, {"F": 1.0}),
                               bundle.vector_for_demographics(age=30, gender="F"))
    np.testing.assert_allclose(bundle.vector_for_demographic_mixture({"25-34": 2, "35-44": 2}, {"F": 0.7, "M": 0.3}),
                               [0.3, 0.7])
    np.testing.assert_allclose(bundle.vector_for_demographic_mixture(np.ones(8), {"": 1.0}), [0.5, 0.5])
    with pytest.raises(ValueError, match="unknown label 'X'"):
        bundle.vector_for_demographic_mixture({"25-34": 1.0}, {"X": 1.0})
    with pytest.raises(ValueError, match="expected 8 weights"):
        bundle.vector_for_demographic_mixture(np.ones(3), {"F": 1.0})
    with pytest.raises(ValueError, match="positive sum"):
        bundle.vector_for_demographic_mixture({"25-34": 0.0}, {"F": 1.0})


def test_a_confident_face_gets_todays_list(tmp_path):
    home = make_home(tmp_path / "home")
    sure = face(30, 3, "F", 0.97)
    assert demographic_weights(sure) == ({"25-34": 1.0}, {"F": 1.0})
    mixed = recommend_for_face(home, sure, k=3)
    hard = recommend_for_demographics(home, age=30, gender="F", k=3)
    assert mixed.items["item_id"].to_list() == hard.items["item_id"].to_list() == [12, 13, 14]
    np.testing.assert_allclose(mixed.items["score"].to_numpy(), hard.items["score"].to_numpy())


def test_an_unsure_face_hedges(tmp_path):
    home = make_home(tmp_path / "home")
    unsure = face(30, 3, "F", 0.7)  # below the 0.75 threshold: today it would get the unknown slot
    bands, genders = demographic_weights(unsure)
    assert genders == {"F": 0.7, "M": 0.3}
    # Vector [0.3, 0.7]: romance 12 (0.7), 13 (0.56), then action 10 (0.3, ties 14 and wins on index).
    result = recommend_for_face(home, unsure, k=3)
    assert result.items["item_id"].to_list() == [12, 13, 10]
    assert result.basis["gender_weights"] == {"F": 0.7, "M": 0.3} and result.basis["gender"] == "unknown"


def test_batch_selfie_rows_use_the_mixture(tmp_path):
    home = make_home(tmp_path / "home")
    audience = tmp_path / "a.csv"
    audience.write_text("user_id,selfie\nsure,a.jpg\nunsure,b.jpg\n")
    weights = {"a.jpg": mixture_weights(30, 3, 0.97), "b.jpg": mixture_weights(30, 3, 0.7)}

    def profiler(path):
        bands, genders = weights[path.name]
        return 30.0, None, json.dumps([sorted(bands.items()), sorted(genders.items())])

    batch_score(home, audience, tmp_path / "o.parquet", k=3, campaign=None, version=None, rules=CampaignRules(),
                show_progress=False, selfie_profiler=profiler)
    out = pl.read_parquet(tmp_path / "o.parquet")
    lists = {u: out.filter(pl.col("user_id") == u)["item_id"].to_list() for u in ("sure", "unsure")}
    assert lists == {"sure": [12, 13, 14], "unsure": [12, 13, 10]}
