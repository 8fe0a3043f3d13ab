"""Fetching MovieLens from GroupLens, checked against the published MD5 before use.

The file is written under a temporary name and renamed only once its checksum matches, so a
broken or interrupted download never leaves something that looks like the real archive.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Release:
    url: str
    md5: str  # GroupLens publishes an .md5 beside each archive


RELEASES = {
    "100k": Release("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723"),
    "1m": Release("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906"),
}


def download_movielens(
    variant: str, dest_dir: Path, *, release: Release | None = None, show_progress: bool = True
) -> Path:
    """The archive for ``variant`` in ``dest_dir``, downloaded unless a verified copy is there."""
    if release is None:
        if variant not in RELEASES:
            raise InputError(f"unknown MovieLens release {variant!r}; expected one of {', '.join(RELEASES)}")
        release = RELEASES[variant]
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / Path(release.url).name
    if target.exists() and _md5(target) == release.md5:
        return target
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(release.url, timeout=60) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            _copy(response, out, total, show_progress, label=target.name)
    except (urllib.error.URLError, OSError) as e:
        partial.unlink(missing_ok=True)
        raise InputError(
            f"could not download {release.url} ({e}); download it by hand and pass its path instead"
        ) from e
    got = _md5(partial)
    if got != release.md5:
        partial.unlink(missing_ok=True)
        raise InputError(f"{release.url}: checksum mismatch (expected MD5 {release.md5}, got {got}); not used")
    os.replace(partial, target)
    return target


def _copy(response, out, total: int | None, show_progress: bool, label: str) -> None:
    from tqdm import tqdm

    with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not show_progress) as bar:
        while chunk := response.read(1 << 16):
            out.write(chunk)
            bar.update(len(chunk))


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
