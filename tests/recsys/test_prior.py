"""The counted prior: each age band x gender group's liked items, as log-probabilities."""

import numpy as np

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
