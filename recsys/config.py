"""Training configuration: one frozen dataclass, logged whole with ``dataclasses.asdict``.

Defaults are the ones measured on MovieLens 100K by ``benchmarks/bench_recsys.py``.
"""

from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path

from recsys.item_item import ItemItemConfig


@dataclass(frozen=True)
class TowerConfig:
    """Sizes of the wide-and-deep towers."""

    output_dim: int = 32  # the dimension of the user and item vectors the dot product compares
    feature_embedding_dim: int = 8  # age band, gender, occupation, year, genre, title tokens
    hidden_units: tuple[int, ...] = (64,)  # the deep part's MLP; () makes it a linear layer
    # An item bias column (item tower) against a constant 1 (user tower): the wide "popularity"
    # term a dot product cannot otherwise express without spending a dimension on it.
    item_bias: bool = True
    l2: float = 0.0  # L2 on embeddings and dense kernels


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``recsys.train.train_and_evaluate`` needs besides the data."""

    seed: int = 42  # initialisation and shuffling; never the evaluation split (see split_seed)
    # The cold-start evaluation split's seed. None: a user's side is a fixed hash of their id
    # (recsys.splits.stable_unit), so every version is judged on the same users, whatever its seed.
    split_seed: int | None = None
    tower: TowerConfig = field(default_factory=TowerConfig)
    epochs: int = 8
    batch_size: int = 1024  # also the number of in-batch negatives
    learning_rate: float = 0.01  # Adam
    temperature: float = 1.0
    # Subtract log(sampling probability) from in-batch logits (Yi et al. 2019, "Sampling-bias-
    # corrected neural modeling"): popular items are over-represented as in-batch negatives.
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    # Share of training examples whose user id is replaced by the OOV id, so the demographic
    # path learns to stand alone and the same model serves new visitors.
    user_id_dropout: float = 0.3
    # Share of examples whose age band / gender / occupation is blanked, so "unknown" learns
    # the marginal instead of staying a random vector.
    demographic_dropout: float = 0.05
    # Occupation is blanked more often: with 21 values over a few hundred users it is a noisy
    # signal, and leaning on it hurt cold-start lists on MovieLens 100K.
    occupation_dropout: float = 0.5
    # Train only on interactions rated at least this (None: every interaction is a positive).
    positive_min_rating: float | None = None
    # Weight each example by max(0, rating - offset), normalised to mean 1 (None: all weigh 1).
    # The lists are judged on items rated >= 4, so a 5 should pull harder than a 2; on
    # MovieLens 100K, popularity weighted this way beats popularity by count.
    rating_weight_offset: float | None = 2.0
    # The wide part's memory for new visitors (see ``recsys.prior``): after training, each item
    # vector gains one column per age band x gender group holding log p(item | group), counted
    # from rating-weighted training ratings, and a user vector without a known id gains its
    # group's one-hot times this weight. 0 turns it off; known users are never affected. On a
    # validation split of ML-100K's training users NDCG@10 rose with the weight up to about 4.
    cold_start_prior_weight: float = 4.0
    # Share of the adjacent age bands' counts added to a group's (same gender): neighbouring
    # ages like similar films, and it thickens the small groups.
    prior_neighbour_weight: float = 0.5
    # Pseudo-examples of the parent distribution (the gender's, then the global) per group.
    prior_shrinkage: float = 10.0
    # Each user's ratings in the prior's counts are divided by (their rating count) ** this, so a
    # handful of prolific raters do not set the taste of a whole group. On validation users
    # carved from ML-100K's cold-start training side, 0.3 raised NDCG@10 by 0.002 (4 seeds).
    prior_user_weight_exponent: float = 0.3
    # Evaluation protocol.
    holdout_share: float = 0.2
    relevant_min_rating: float = 4.0
    k: int = 10
    # Judged users per protocol, at most (an even spread in id order, the same for every version
    # on the same data); None judges all. Scoring every user against every item is the cost that
    # grows fastest with scale (each protocol costs users x items). 10,000 users measure a mean
    # NDCG@10 to about +-0.003 (one standard error), finer than the gaps that decide promotion.
    max_judged_users: int | None = 10_000
    # After evaluating on the splits, train once more on all the data for export. Costs one
    # more training run; without it the warm-split model (every user, 80% of history) is kept.
    refit_on_all_data: bool = True
    # implicit ALS baseline (warm protocol only); the best of a small grid on ML-100K warm.
    als_factors: int = 128
    als_regularization: float = 10.0
    als_iterations: int = 15
    als_alpha: float = 1.0
    # The item-item part that blends a person's liked items into their scores (recsys.personalize).
    item_item: ItemItemConfig = field(default_factory=ItemItemConfig)

    def __post_init__(self) -> None:
        for name in ("user_id_dropout", "demographic_dropout", "occupation_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1) (got {value})")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(
                f"expected epochs >= 1 and batch_size >= 2 (got {self.epochs}, {self.batch_size})"
            )
        if (
            self.cold_start_prior_weight < 0 or self.prior_neighbour_weight < 0 or self.prior_shrinkage <= 0
            or self.prior_user_weight_exponent < 0
        ):
            raise ValueError(
                "expected cold_start_prior_weight >= 0, prior_neighbour_weight >= 0, prior_shrinkage > 0 "
                "and prior_user_weight_exponent >= 0 (got "
                f"{self.cold_start_prior_weight}, {self.prior_neighbour_weight}, {self.prior_shrinkage}, "
                f"{self.prior_user_weight_exponent})"
            )
        if self.max_judged_users is not None and self.max_judged_users < 1:
            raise ValueError(f"max_judged_users must be at least 1 or none (got {self.max_judged_users})")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive (got {self.temperature})")

    def with_changes(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (``tower`` may be a dict of TowerConfig fields)."""
        if isinstance(changes.get("tower"), dict):
            changes["tower"] = replace(self.tower, **changes["tower"])
        if isinstance(changes.get("item_item"), dict):
            changes["item_item"] = replace(self.item_item, **changes["item_item"])
        return replace(self, **changes)

    @classmethod
    def from_toml(cls, path: str | Path) -> "TrainConfig":
        """Settings from a TOML file (as ``to_toml`` writes it); absent keys keep their defaults.

        An optional setting is turned off with the string "none" (TOML has no null).
        """
        try:
            raw = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML ({e})") from e
        changes = _checked(cls, raw, str(path))
        for name, section in _sections(cls()).items():
            if name in changes:
                changes[name] = type(section)(**_checked(type(section), changes[name], f"{path} [{name}]"))
        return cls().with_changes(**changes)

    def to_toml(self) -> str:
        """Every setting with its value, readable back by ``from_toml``."""
        lines = ["# selfie-recsys training settings (train --config FILE.toml); \"none\" turns an optional one off"]
        sections = _sections(self)
        lines += [_toml_line(f.name, getattr(self, f.name)) for f in fields(self) if f.name not in sections]
        for name, section in sections.items():  # nested settings (tower, item_item) as [tables]
            lines += ["", f"[{name}]"] + [_toml_line(f.name, getattr(section, f.name)) for f in fields(section)]
        return "\n".join(lines) + "\n"


def _sections(config) -> dict:
    """The fields of ``config`` that are settings dataclasses of their own, by name."""
    return {f.name: getattr(config, f.name) for f in fields(config) if is_dataclass(getattr(config, f.name))}


def _toml_line(name: str, value) -> str:
    if value is None:
        return f'{name} = "none"'
    if isinstance(value, bool):
        return f"{name} = {str(value).lower()}"
    if isinstance(value, tuple):
        return f"{name} = [{', '.join(map(str, value))}]"
    return f"{name} = {value!r}"


def _checked(cls, raw: dict, where: str) -> dict:
    """``raw`` with values converted to the dataclass's field types; unknown keys are refused."""
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}; expected some of {', '.join(hints)}")
    out = {}
    for name, value in raw.items():
        hint = hints[name]
        if isinstance(hint, type) and is_dataclass(hint):
            if not isinstance(value, dict):
                raise ValueError(f"{where}: '{name}' must be a table ([{name}]), got {value!r}")
            out[name] = value
            continue
        optional = type(None) in typing.get_args(hint)
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
        if optional and value == "none":
            out[name] = None
        elif typing.get_origin(base) is tuple and isinstance(value, list) and all(isinstance(v, int) for v in value):
            out[name] = tuple(value)
        elif base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
        elif base in (int, bool, str) and type(value) is base:
            out[name] = value
        else:
            expected = "a list of integers" if typing.get_origin(base) is tuple else getattr(base, "__name__", str(base))
            or_none = ' or "none"' if optional else ""
            raise ValueError(f"{where}: {name} must be {expected}{or_none} (got {value!r})")
    return out
