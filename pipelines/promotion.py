"""The champion rule: compare like with like, beyond noise, without giving up warm or few-shot.

Two versions trained on the same data snapshot were judged on the same users (the evaluation
split depends on the data, not on the training seed), so they are compared user by user: the
difference in NDCG@10 per user, resampled over users (a paired bootstrap), gives a 95%
interval for the mean difference.

The rule (printed by ``train``, tagged on the MLflow run and stored with the version):

- no champion yet, or a champion trained on other data (it cannot serve this catalog): the
  new version becomes champion;
- otherwise it is promoted only when its cold-start gain is above noise (the interval's lower
  bound > 0) and it loses nothing beyond noise on warm or few-shot protocols (no interval
  entirely below 0). A version that improves warm or few-shot but loses cold start beyond noise
  is not promoted (``--promote`` overrides any of this, and says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRIMARY = "cold"  # the product's job: lists for people it has never seen
BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Difference:
    """Mean NDCG@10 of B minus A over the users both were judged on, with a bootstrap interval."""

    protocol: str
    n_users: int
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        if self.n_users == 0:
            return "no common users"
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "tie"

    def describe(self) -> str:
        return (f"{self.protocol} NDCG@10 {self.mean_b:.4f} vs {self.mean_a:.4f} "
                f"(diff {self.diff:+.4f}, 95% CI [{self.low:+.4f}, {self.high:+.4f}], {self.n_users} users)")


def paired_difference(protocol: str, a: np.ndarray, b: np.ndarray, *, samples: int = BOOTSTRAP_SAMPLES,
                      random_state: int = 0) -> Difference:
    """B - A per user (same users, same order), with a percentile bootstrap interval of the mean."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same users: got {a.shape} and {b.shape}")
    n = len(a)
    if n == 0:
        return Difference(protocol, 0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"))
    delta = b - a
    rng = np.random.default_rng(random_state)
    means = delta[rng.integers(0, n, size=(samples, n))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Difference(protocol, n, float(a.mean()), float(b.mean()), float(delta.mean()), float(low), float(high))


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    differences: tuple[Difference, ...] = ()


def decide(
    champion_version: int | None,
    differences: list[Difference],
    *,
    champion_stale: bool = False,
    force: bool = False,
) -> Decision:
    """Apply the champion rule to the paired differences (new minus champion) per protocol."""
    diffs = tuple(differences)
    if champion_version is None:
        return Decision(True, "first version: champion by default", diffs)
    summary = "; ".join(d.describe() for d in diffs)
    if champion_stale:
        return Decision(True, f"champion v{champion_version} was trained on other data and cannot serve this "
                              "catalog; the new version replaces it", diffs)
    if force:
        return Decision(True, f"promotion forced (--promote) over champion v{champion_version}"
                              + (f": {summary}" if summary else ""), diffs)
    by_protocol = {d.protocol: d for d in diffs}
    primary = by_protocol.get(PRIMARY)
    if primary is None or primary.n_users == 0:
        return Decision(False, f"no cold-start users in common with champion v{champion_version} to compare; "
                               "kept as candidate (promote with `models promote` if intended)", diffs)
    guards = [d for d in diffs if d.protocol != PRIMARY and d.n_users > 0]
    worse_guards = [d.protocol for d in guards if d.verdict == "worse"]
    better_guards = [d.protocol for d in guards if d.verdict == "better"]
    if primary.verdict == "better" and not worse_guards:
        return Decision(True, f"beats champion v{champion_version} beyond noise: {summary}", diffs)
    if primary.verdict == "better":
        why = f"gains on cold start but loses {', '.join(worse_guards)} beyond noise"
    elif primary.verdict == "worse":
        why = "loses cold start beyond noise" + (
            f" although it improves {', '.join(better_guards)}" if better_guards else "")
    else:
        why = "no cold-start gain beyond noise" + (
            f" (it improves {', '.join(better_guards)})" if better_guards else "")
    return Decision(False, f"not promoted over champion v{champion_version}: {why}: {summary}; kept as candidate",
                    diffs)


def compared_protocols(metrics: dict[str, float]) -> list[str]:
    """Protocols judged per user, cold first: cold, warm and any few-shot ones (fewshot.n3, ...)."""
    protocols = {key.rsplit(".", 1)[0] for key in metrics if key.endswith(".ndcg_at_10")}
    protocols = {p for p in protocols if p in ("cold", "warm") or p.startswith("fewshot")}
    return sorted(protocols, key=lambda p: (p != PRIMARY, p))
