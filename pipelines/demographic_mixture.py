"""From an uncertain age and gender (a face estimate) to weights over the model's age bands and genders.

The recommender's cold-start table has one vector per (age band, gender); a photo gives an age with a
spread and a gender probability. Instead of one hard band and gender, the list is scored with the
mixture of the vectors, weighted by how likely each band and gender is
(`ServingBundle.vector_for_demographic_mixture`). A confident estimate keeps today's list: band
weights under `min_band_weight` are dropped, and a gender at or above the recommender's threshold
is taken as given. This module joins vision's numbers to recsys's age bands; it is pure arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from recsys.age_bands import AGE_BAND_LOWER_BOUNDS, AGE_BANDS

UNKNOWN = ""  # the bundle's unknown slot


@dataclass(frozen=True)
class MixturePolicy:
    # Bands less likely than this are dropped (and the rest renormalised): with the spread of a sharp
    # photo (about 2-4 years) a face in the middle of a band keeps that band alone, as before.
    min_band_weight: float = 0.15
    # At or above this probability the gender is taken as given (vision.types.GENDER_CONFIDENCE_THRESHOLD).
    gender_threshold: float = 0.75
    # Below it: "mixture" weighs F and M by their probabilities; "unknown" uses the unknown slot (as before).
    unsure_gender: str = "mixture"
    # Faces estimated younger than this get the unknown gender slot (vision.types.CHILD_AGE_YEARS).
    child_age: float = 13.0

    def __post_init__(self):
        if self.unsure_gender not in ("mixture", "unknown"):
            raise ValueError(f"unsure_gender must be 'mixture' or 'unknown', got {self.unsure_gender!r}")
        if not 0 <= self.min_band_weight < 1:
            raise ValueError(f"min_band_weight must be in [0, 1), got {self.min_band_weight}")


def _normal_cdf(x: float, mean: float, sd: float) -> float:
    return 0.5 * (1.0 + math.erf((x - mean) / (sd * math.sqrt(2.0))))


def band_weights(age_years: float, spread_years: float, min_weight: float = MixturePolicy.min_band_weight) -> dict[str, float]:
    """Probability of each age band under Normal(age, spread), mass below 0 counted in the first
    band; bands under `min_weight` dropped, the rest summing to 1. A zero spread gives the band of
    the age itself."""
    if not math.isfinite(age_years) or not math.isfinite(spread_years) or spread_years < 0:
        raise ValueError(f"expected a finite age and a non-negative spread, got {age_years} and {spread_years}")
    if spread_years == 0:
        index = max(i for i, lower in enumerate(AGE_BAND_LOWER_BOUNDS) if lower <= max(age_years, 0.0))
        return {AGE_BANDS[index]: 1.0}
    edges = list(AGE_BAND_LOWER_BOUNDS[1:])
    cdf = [0.0] + [_normal_cdf(edge, age_years, spread_years) for edge in edges] + [1.0]
    mass = {band: cdf[i + 1] - cdf[i] for i, band in enumerate(AGE_BANDS)}
    kept = {band: w for band, w in mass.items() if w >= min_weight} or {max(mass, key=mass.get): 1.0}
    total = sum(kept.values())
    return {band: w / total for band, w in kept.items()}


def gender_weights(female_probability: float, age_years: float, policy: MixturePolicy = MixturePolicy()) -> dict[str, float]:
    """{"F": ..., "M": ...} or {"": 1.0} (unknown), by the policy's rules."""
    if not 0.0 <= female_probability <= 1.0:
        raise ValueError(f"expected a female probability in [0, 1], got {female_probability}")
    if age_years < policy.child_age:
        return {UNKNOWN: 1.0}
    if female_probability >= policy.gender_threshold:
        return {"F": 1.0}
    if 1.0 - female_probability >= policy.gender_threshold:
        return {"M": 1.0}
    if policy.unsure_gender == "unknown":
        return {UNKNOWN: 1.0}
    return {"F": female_probability, "M": 1.0 - female_probability}


def mixture_weights(age_years: float, spread_years: float, female_probability: float,
                    policy: MixturePolicy = MixturePolicy()) -> tuple[dict[str, float], dict[str, float]]:
    """(age band weights, gender weights) for `ServingBundle.vector_for_demographic_mixture`."""
    return (band_weights(age_years, spread_years, policy.min_band_weight),
            gender_weights(female_probability, age_years, policy))
