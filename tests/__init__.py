"""Tests. A package, so that pytest names tests/recsys and tests/vision tests.recsys and
tests.vision instead of letting them shadow the real recsys and vision packages."""
