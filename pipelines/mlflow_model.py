"""The registered MLflow model: the serving bundle behind MLflow's pyfunc interface.

Logged as "model from code" (MLflow reads this file, nothing is pickled), with the one module
it needs (``recsys/serving.py``, numpy only) shipped as code, so it loads outside this
repository wherever numpy and pandas are installed::

    model = mlflow.pyfunc.load_model("models:/selfie-recsys@champion")
    model.predict(pd.DataFrame({"age": [34, 61], "gender": ["F", "M"]}), params={"k": 5})
    model.predict(pd.DataFrame({"user_id": [42]}))      # a known user: seen items left out

Each row is a known user (``user_id``) or a new person (``age`` in years or a MovieLens 1M code,
``gender`` M/F, optionally ``occupation``); a row may give both: an id the model does not know
falls back to the demographics. Invalid values are refused with the row named, as the CLI
does. Output per row: ``item_ids``, ``scores`` (best first) and ``basis`` (known_user or
demographics). Scoring is vectorised: each distinct demographic combination and each distinct
known user is scored once, in one matrix product per chunk.

A catalog with string ids (SKUs, UUIDs; see pipelines.ids) ships its users' and items' source ids
with the model (the ``source_ids`` artifact): ``user_id`` is then the source's id, matched exactly
after trimming spaces (a key is not an id), and ``item_ids`` are the source's strings, as the CLI
and the service show them. An integer catalog takes and gives integers, as before.
"""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from recsys.serving import ServingBundle

_CHUNK = 4096


def _invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class BundleModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.bundle = ServingBundle.load(context.artifacts["bundle"])
        seen = np.load(context.artifacts["seen_items"], allow_pickle=False)
        # CSR over the bundle's known users: items user_ids[i] rated are item_rows[offsets[i]:offsets[i+1]].
        self.seen_offsets, self.seen_item_rows = seen["offsets"], seen["item_rows"]
        # With an item-item part: each known user's liked items (same CSR), as the CLI uses them.
        self.liked = (seen["liked_offsets"], seen["liked_item_rows"]) if "liked_offsets" in seen.files else None
        self.source_ids = SourceIds(context.artifacts.get("source_ids"))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        k = int((params or {}).get("k", 10))
        if not 1 <= k <= 1000:
            raise _invalid(f"k must be between 1 and 1000 (got {k})")
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        known_rows, codes, demographic_vectors = self._vectors(frame)
        n = len(frame)
        ids = np.full((n, k), -1, dtype=np.int64)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        known = known_rows >= 0
        # Lists depend only on the (age, gender, occupation) combination or the known user:
        # score each distinct one once, then copy its list to every row that asked for it.
        if (~known).any():
            combo_ids, combo_scores = self.bundle.recommend(demographic_vectors, k=k)
            ids[~known], scores[~known] = combo_ids[codes[~known]], combo_scores[codes[~known]]
        if known.any():
            users, inverse = np.unique(known_rows[known], return_inverse=True)
            user_ids = np.empty((len(users), k), dtype=np.int64)
            user_scores = np.empty((len(users), k), dtype=np.float32)
            for start in range(0, len(users), _CHUNK):
                chunk = users[start:start + _CHUNK]
                if self.liked is not None and self.bundle.item_item is not None:
                    user_ids[start:start + len(chunk)], user_scores[start:start + len(chunk)] = self._with_likes(chunk, k)
                    continue
                exclude = np.zeros((len(chunk), len(self.bundle.item_ids)), dtype=bool)
                for offset, row in enumerate(chunk):
                    exclude[offset, self.seen_item_rows[self.seen_offsets[row]:self.seen_offsets[row + 1]]] = True
                user_ids[start:start + len(chunk)], user_scores[start:start + len(chunk)] = self.bundle.recommend(
                    self.bundle.user_vectors[chunk], k=k, exclude=exclude)
            ids[known], scores[known] = user_ids[inverse], user_scores[inverse]
        shown = self.source_ids.shown_items(ids)
        if (ids >= 0).all():
            item_lists, score_lists = shown.tolist(), scores.astype(np.float64).tolist()
        else:  # fewer than k items left for some rows: their lists are shorter
            keep = ids >= 0
            item_lists = [row[mask].tolist() for row, mask in zip(shown, keep)]
            score_lists = [row[mask].astype(np.float64).tolist() for row, mask in zip(scores, keep)]
        basis = np.where(known, "known_user", "demographics")
        return pd.DataFrame({"item_ids": item_lists, "scores": score_lists, "basis": basis})

    def _with_likes(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Known users' lists bent toward everything they liked: the CLI's `recommend --user-id`."""
        from recsys.personalize import History, recommend_many_with_history, taste_dimensions

        offsets, liked_rows = self.liked
        histories = [History(liked=tuple(liked_rows[offsets[r]:offsets[r + 1]].tolist()),
                             seen=tuple(self.seen_item_rows[self.seen_offsets[r]:self.seen_offsets[r + 1]].tolist()))
                     for r in rows]
        indices, scores = recommend_many_with_history(
            self.bundle.item_vectors, self.bundle.user_vectors[rows], histories, k=k, known_user=True,
            item_item=self.bundle.item_item,
            taste_dims=taste_dimensions(self.bundle.manifest, self.bundle.item_vectors.shape[1]))
        return np.where(indices >= 0, self.bundle.item_ids[np.maximum(indices, 0)], -1), scores

    def _vectors(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validated rows as: each row's known user in the bundle (-1 if none), each row's code into
        the table of distinct demographic vectors, and that table."""
        n = len(frame)
        unknown = [c for c in frame.columns if c not in COLUMNS]
        if unknown:
            raise _invalid(f"unexpected column(s) {unknown}; expected some of {', '.join(COLUMNS)}")
        column = {c: (frame[c].reset_index(drop=True) if c in frame.columns else pd.Series([None] * n, dtype=object))
                  for c in COLUMNS}
        if self.source_ids.users is None:
            user_id = _numbers(column["user_id"], "user_id")
            age = _numbers(column["age"], "age")
            fractional = ~np.isnan(user_id) & (user_id != np.floor(user_id))
            if fractional.any():
                raise _invalid(f"row {_first(fractional)}: user_id must be an integer (got {user_id[_first(fractional)]})")
            given, shown_user = ~np.isnan(user_id), lambda i: str(int(user_id[i]))
        else:  # the source's ids: each one's key, NaN for an id the model does not know
            text, blank = _texts(column["user_id"])
            user_id = self.source_ids.user_keys(text.to_numpy(dtype=object), blank.to_numpy())
            given, shown_user = ~blank.to_numpy(), lambda i: repr(text[i])
            age = _numbers(column["age"], "age")
        out_of_range = ~np.isnan(age) & ((age < 0) | (age > 120))
        if out_of_range.any():
            i = _first(out_of_range)
            raise _invalid(f"row {i}: age must be between 0 and 120 years or a MovieLens 1M code (got {age[i]:g})")
        gender, gender_blank = _texts(column["gender"])
        gender = gender.str.upper()
        bad_gender = ~gender_blank & ~gender.isin(["M", "F"])
        if bad_gender.any():
            i = _first(bad_gender.to_numpy())
            raise _invalid(f"row {i}: gender must be M or F, or empty when unknown (got {column['gender'][i]!r})")
        occupation, occupation_blank = _texts(column["occupation"])

        lookup = pd.Series(np.arange(len(self.bundle.user_ids)), index=self.bundle.user_ids.astype(np.float64))
        known_rows = lookup.reindex(user_id).fillna(-1).to_numpy().astype(np.int64)
        known = known_rows >= 0
        no_demographics = np.isnan(age) & gender_blank.to_numpy() & occupation_blank.to_numpy()
        stranger = given & ~known & no_demographics
        if stranger.any():
            i = _first(stranger)
            raise _invalid(f"row {i}: user {shown_user(i)} is not known to this model version; "
                           "give age and gender for a new person")
        # A new person's vector depends only on (age, gender, occupation): one per distinct combination.
        codes, combos = pd.factorize(pd.MultiIndex.from_arrays([
            np.nan_to_num(age, nan=-1.0), gender.where(~gender_blank, ""), occupation.where(~occupation_blank, ""),
        ]))
        dim = self.bundle.item_vectors.shape[1]
        table = np.stack([
            self.bundle.vector_for_demographics(age=None if a < 0 else a, gender=g or None, occupation=o or None)
            for a, g, o in combos
        ]) if len(combos) else np.zeros((0, dim), np.float32)
        return known_rows, codes, table


COLUMNS = ("user_id", "age", "gender", "occupation")


class SourceIds:
    """The source's ids of the model's users and items, read memory-mapped from the folder that
    ``pipelines.ids.write_model_ids`` wrote (same file names: this module ships without that one).
    A kind without its files has integer ids, which are the keys."""

    def __init__(self, folder: str | None):
        def pair(first: str, second: str):
            if folder is None or not (Path(folder) / first).exists():
                return None
            return np.load(Path(folder) / first, mmap_mode="r"), np.load(Path(folder) / second, mmap_mode="r")

        self.users = pair("user_external.npy", "user_keys.npy")  # sorted external ids (UTF-8 bytes), keys
        self.items = pair("item_keys.npy", "item_external.npy")  # sorted keys, external ids

    def user_keys(self, texts: np.ndarray, blank: np.ndarray) -> np.ndarray:
        """Each id's key as a float (the bundle lookup's type); NaN where blank or unknown."""
        external, keys = self.users
        out = np.full(len(texts), np.nan)
        if len(external) == 0 or blank.all():
            return out
        wanted = np.array([t.encode("utf-8") for t in texts[~blank]], dtype="S")
        pos = np.minimum(np.searchsorted(external, wanted), len(external) - 1)
        # Compared again in full: searching may cast a query longer than every stored id to their width.
        hit = external[pos] == wanted
        out[np.flatnonzero(~blank)[hit]] = keys[pos[hit]]
        return out

    def shown_items(self, ids: np.ndarray) -> np.ndarray:
        """Item keys as the output shows them: unchanged (integers), or the source's strings
        (-1, an empty slot, stays a placeholder that the caller drops)."""
        if self.items is None:
            return ids
        keys, external = self.items
        pos = np.minimum(np.searchsorted(keys, ids), max(len(keys) - 1, 0))
        hit = (keys[pos] == ids) if len(keys) else np.zeros(ids.shape, dtype=bool)
        shown = ids.astype(str).astype(object)  # a key without a source id (not expected) shows as itself
        shown[hit] = np.char.decode(external[pos[hit]], "utf-8")
        return shown


def _first(mask) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def _texts(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Stripped strings and where they are blank (missing or empty)."""
    text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
    return text, text == ""


def _numbers(values: pd.Series, name: str) -> np.ndarray:
    """Floats with NaN where blank; a value that is not a finite number is refused with its row."""
    text, blank = _texts(values)
    numbers = pd.to_numeric(text.where(~blank, None), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~blank.to_numpy() & ~np.isfinite(numbers)
    if bad.any():
        i = _first(bad)
        raise _invalid(f"row {i}: {name} must be a finite number (got {values[i]!r})")
    return numbers


mlflow.models.set_model(BundleModel())
