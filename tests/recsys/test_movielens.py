"""One brief training run on MovieLens 100K, where it is present (skipped otherwise)."""

import importlib.util
from pathlib import Path

import pytest

from recsys.baselines import Popularity
from recsys.config import TrainConfig
from recsys.evaluate import COLD, build_protocol, evaluate
from recsys.splits import cold_start_split
from recsys.train import fit_two_tower

from .conftest import ML100K

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_data,
    pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason=f"{ML100K} is not here"),
]


def _load():
    # The benchmark owns the ml-100k parser until the warehouse's readers land.
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_recsys.py"
    spec = importlib.util.spec_from_file_location("bench_recsys", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_movielens_100k(ML100K)


def test_cold_start_beats_global_popularity_on_movielens():
    data = _load()
    cfg = TrainConfig()
    split = cold_start_split(data, cfg.holdout_share, random_state=cfg.seed)
    protocol = build_protocol(COLD, split, cfg.relevant_min_rating)
    recommender, _ = fit_two_tower(split.train, cfg)
    model = evaluate(recommender, protocol).metrics["ndcg_at_10"]
    popularity = evaluate(Popularity().fit(split.train), protocol).metrics["ndcg_at_10"]
    assert model > popularity
