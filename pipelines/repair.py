"""Find and remove what an interrupted ``train`` left behind, so registry, bundles and warehouse agree.

``train`` does all its MLflow and bundle writes while holding the warehouse's write lock, so
while ``repair`` holds that lock nothing is half-finished on purpose: whatever does not match
the warehouse is a leftover of a killed process.

- a registry version the warehouse does not know: deleted from the registry (its run is kept,
  marked FAILED, for the record);
- a ``bundles/vN`` folder no warehouse version points to, and ``bundles/.incoming-*`` folders:
  removed;
- runs stuck in RUNNING: marked FAILED;
- the MLflow alias ``champion`` not on the warehouse's champion: moved there;
- warehouse versions whose bundle is missing: reported (retrain or promote another version).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from warehouse.connection import connected
from warehouse.model_versions import list_versions


@dataclass(frozen=True)
class Finding:
    kind: str  # orphan_registry_version | orphan_bundle | incoming_folder | stuck_run | alias | missing_bundle
    what: str
    action: str  # what was done (or would be, with dry_run)


def repair(home: Path, *, dry_run: bool, lock_timeout_s: float) -> list[Finding]:
    from pipelines import tracking

    tracking.open_store(home)
    findings: list[Finding] = []
    verb = "would " if dry_run else ""
    with connected(home, lock_timeout_s=lock_timeout_s) as conn:  # no train can be finishing now
        versions = list_versions(conn)
        known = {v.version for v in versions}
        bundle_dirs = {Path(v.bundle_path).resolve() for v in versions if v.bundle_path}
        for number in tracking.registry_versions(home):
            if number not in known:
                findings.append(Finding("orphan_registry_version", f"MLflow registry version {number}",
                                        f"{verb}delete it from the registry (the warehouse has no such version)"))
                if not dry_run:
                    tracking.discard_version(home, number, None, reason="orphan: removed by models repair")
        bundles = Path(home) / "bundles"
        for folder in sorted(bundles.iterdir()) if bundles.is_dir() else []:
            if folder.name.startswith(".incoming-"):
                findings.append(Finding("incoming_folder", str(folder), f"{verb}remove it (an unfinished export)"))
            elif folder.is_dir() and folder.name.startswith("v") and folder.resolve() not in bundle_dirs:
                findings.append(Finding("orphan_bundle", str(folder), f"{verb}remove it (no warehouse version uses it)"))
            else:
                continue
            if not dry_run:
                shutil.rmtree(folder)
        for run_id in tracking.stuck_runs(home):
            findings.append(Finding("stuck_run", f"MLflow run {run_id}", f"{verb}mark it FAILED (its process ended)"))
            if not dry_run:
                tracking.mark_failed(home, run_id, "stuck in RUNNING: marked FAILED by models repair")
        best = next((v for v in versions if v.status == "champion"), None)
        alias = tracking.champion_alias(home)
        if best is not None and alias != best.version:
            findings.append(Finding("alias", f"MLflow alias champion -> {alias}",
                                    f"{verb}move it to v{best.version}, the warehouse's champion"))
            if not dry_run:
                tracking.set_champion_alias(home, best.version)
        for v in versions:
            if v.bundle_path and not (Path(v.bundle_path) / "manifest.json").is_file():
                findings.append(Finding("missing_bundle", f"v{v.version} ({v.status}): {v.bundle_path}",
                                        "none: retrain, or promote another version if it is champion"))
    return findings
