"""The counted prior: each age band x gender group's liked items, as log-probabilities."""

import numpy as np
import polars as pl

from recsys.data import RecsysData
from recsys.features import build_vocabularies
from recsys.prior import demographic_log_prior, group_index


def _prior(data, **kwargs):
    vocab = build_vocabularies(data.users, data.items)
    return vocab, demographic_log_prior(data, vocab, **kwargs)


def test_each_group_prefers_its_side_of_the_checkerboard(taste_data):
    vocab, prior = _prior(taste_data)
    n_ages, n_genders = len(vocab.age_bands), len(vocab.genders)
    assert prior.shape == ((n_ages + 1) * (n_genders + 1), taste_data.items.height)
    assert np.isfinite(prior).all()
    # Every row is a distribution over the catalog.
    np.testing.assert_allclose(np.exp(prior).sum(axis=1), 1.0, rtol=1e-4)
    even = taste_data.items["item_id"].to_numpy() % 2 == 0
    age = vocab.age_bands.index("25-34") + 1
    women = prior[group_index(age, vocab.genders.index("F") + 1, n_genders)]
    men = prior[group_index(age, vocab.genders.index("M") + 1, n_genders)]
    assert women[even].min() > women[~even].max()
    assert men[~even].min() > men[even].max()
    # Unknown age band: the gender's distribution, still on its side of the board.
    unknown_age_women = prior[group_index(0, vocab.genders.index("F") + 1, n_genders)]
    assert unknown_age_women[even].min() > unknown_age_women[~even].max()


def test_neighbouring_age_bands_fill_an_empty_group(taste_data):
    # The synthetic users are 22, 30 or 40: the 35-44 band is filled, 45-49 is empty.
    vocab, plain = _prior(taste_data)
    _, smoothed = _prior(taste_data, neighbour_weight=0.5)
    n_genders = len(vocab.genders)
    row = group_index(vocab.age_bands.index("45-49") + 1, vocab.genders.index("F") + 1, n_genders)
    gender_row = group_index(0, vocab.genders.index("F") + 1, n_genders)
    # Without smoothing the empty group falls back to the gender's distribution exactly.
    np.testing.assert_allclose(plain[row], plain[gender_row], rtol=1e-5)
    assert not np.allclose(smoothed[row], smoothed[gender_row])


def _prolific_against_light_raters() -> RecsysData:
    """Women aged 30: four rate item 1 among 100 others, three rate only item 2 (and one more)."""
    heavy, light = [1, 2, 3, 4], [5, 6, 7]
    users = pl.DataFrame({
        "user_id": heavy + light,
        "age": [30] * 7,
        "gender": ["F"] * 7,
        "occupation": ["writer"] * 7,
        "zip": ["00000"] * 7,
    }, schema={"user_id": pl.Int64, "age": pl.Int32, "gender": pl.Utf8, "occupation": pl.Utf8, "zip": pl.Utf8})
    item_ids = list(range(1, 200))
    items = pl.DataFrame({
        "item_id": item_ids,
        "title": [f"Film {i} (1995)" for i in item_ids],
        "year": [1995] * len(item_ids),
        "genres": [["Drama"]] * len(item_ids),
    }, schema={"item_id": pl.Int64, "title": pl.Utf8, "year": pl.Int32, "genres": pl.List(pl.Utf8)})
    rows = [(u, 1) for u in heavy] + [(u, i) for u in heavy for i in range(10 + 40 * (u - 1), 110 + 40 * (u - 1)) if i < 200]
    rows += [(u, 2) for u in light] + [(u, 3 + u) for u in light]
    interactions = pl.DataFrame(
        [(u, i, 5.0, 1_000_000 + n) for n, (u, i) in enumerate(rows)],
        schema={"user_id": pl.Int64, "item_id": pl.Int64, "rating": pl.Float32, "timestamp": pl.Int64},
        orient="row",
    )
    return RecsysData(users=users, items=items, interactions=interactions)


def test_user_weighting_keeps_prolific_raters_from_outvoting_many_light_ones():
    data = _prolific_against_light_raters()
    vocab = build_vocabularies(data.users, data.items)
    row = group_index(vocab.age_bands.index("25-34") + 1, vocab.genders.index("F") + 1, len(vocab.genders))
    by_rating = demographic_log_prior(data, vocab, user_weight_exponent=0.0)[row]
    by_user = demographic_log_prior(data, vocab, user_weight_exponent=0.3)[row]
    # Counting ratings, the four prolific raters' item 1 wins; weighting each rater by
    # (their count) ** -0.3, the three light raters' item 2 does.
    assert by_rating[0] > by_rating[1]
    assert by_user[1] > by_user[0]
    np.testing.assert_allclose(np.exp(by_user).sum(), 1.0, rtol=1e-4)
