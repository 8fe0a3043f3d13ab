"""The one mapping from age to the model's age bands.

The bands are MovieLens 1M's. Its users.dat stores each band as the band's lower bound
(1 = under 18, 18 = 18-24, 25 = 25-34, ...), so mapping a 1M code as if it were an age
in years lands in the right band: one function serves ages in years (MovieLens 100K, a
face estimate, a campaign audience) and 1M band codes alike.
"""

from __future__ import annotations

import bisect

import numpy as np

# Lower bound of each band, and its label. Every non-negative age falls in exactly one band.
AGE_BAND_LOWER_BOUNDS = (0, 18, 25, 35, 45, 50, 56)
AGE_BANDS = ("0-17", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
ML1M_AGE_CODES = (1, 18, 25, 35, 45, 50, 56)
MAX_AGE = 120


def age_band(age: float) -> str:
    """Band label for an age in years, or for a MovieLens 1M age code."""
    if age is None or age != age:  # None or NaN
        raise ValueError("age is missing: expected a number of years from 0 to 120")
    if not 0 <= age <= MAX_AGE:
        raise ValueError(f"age must be between 0 and {MAX_AGE} years (got {age})")
    return AGE_BANDS[bisect.bisect_right(AGE_BAND_LOWER_BOUNDS, age) - 1]


def age_band_indices(ages: np.ndarray) -> np.ndarray:
    """Band index (into AGE_BANDS) for each age; -1 where the age is missing or out of range."""
    ages = np.asarray(ages, dtype=np.float64)
    valid = (ages >= 0) & (ages <= MAX_AGE)  # False for NaN too
    index = np.searchsorted(AGE_BAND_LOWER_BOUNDS, np.where(valid, ages, 0), side="right") - 1
    return np.where(valid, index, -1)
