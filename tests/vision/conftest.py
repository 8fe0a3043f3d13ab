from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ASTRONAUT = REPO / "examples" / "astronaut.jpg"
# Where the astronaut's face is (x, y, w, h), measured once by eye on the 512 x 512 photo.
ASTRONAUT_FACE = (182, 64, 84, 107)


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    return ASTRONAUT


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    from vision.image import load_rgb

    return load_rgb(ASTRONAUT)


@pytest.fixture(scope="session")
def profiler():
    from vision.profile import SelfieProfiler

    return SelfieProfiler()
