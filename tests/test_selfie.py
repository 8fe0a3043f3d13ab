import json
from pathlib import Path

import numpy as np
import polars as pl
from click.testing import CliRunner
from PIL import Image

from cli import cli
from pipelines.batch_score import batch_score
from pipelines.rules import CampaignRules
from serving_fixtures import heavy_modules_after, make_home

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut.jpg"


def blank_photo(path: Path) -> Path:
    Image.fromarray(np.full((240, 320, 3), 128, dtype=np.uint8)).save(path)
    return path


def test_selfie_of_a_woman_gets_the_womens_list(tmp_path):
    home = make_home(tmp_path / "home")
    result = CliRunner().invoke(cli, ["recommend", "--selfie", str(ASTRONAUT), "-k", "2", "--json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    face = payload["faces"][0]
    assert face["gender_for_recommendation"] == "F" and face["age_band"] in ("25-34", "35-44")
    assert [row["item_id"] for row in face["items"]] == [12, 13]
    assert payload["other_faces"] == 0


def test_selfie_table_names_band_gender_and_confidence(tmp_path):
    home = make_home(tmp_path / "home")
    result = CliRunner().invoke(cli, ["recommend", "--selfie", str(ASTRONAUT), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "-> band " in result.output and "gender F (" in result.output and "Item 12" in result.output


def test_no_face_and_not_an_image_are_clear_errors(tmp_path):
    home = make_home(tmp_path / "home")
    result = CliRunner().invoke(cli, ["recommend", "--selfie", str(blank_photo(tmp_path / "wall.jpg")), "--home", str(home)])
    assert result.exit_code == 1 and "wall.jpg" in result.output and "face" in result.output.lower()
    (tmp_path / "notes.jpg").write_text("not a photo")
    result = CliRunner().invoke(cli, ["recommend", "--selfie", str(tmp_path / "notes.jpg"), "--home", str(home)])
    assert result.exit_code == 1 and "notes.jpg" in result.output and "Traceback" not in result.output


def test_profile_reports_each_photo_and_fails_if_any_failed(tmp_path):
    result = CliRunner().invoke(cli, ["profile", str(ASTRONAUT), str(blank_photo(tmp_path / "wall.png")), "--json"])
    assert result.exit_code == 1
    records = json.loads(result.output)
    assert [r["photo"] for r in records] == [str(ASTRONAUT), str(tmp_path / "wall.png")]
    assert records[0]["error"] is None and records[0]["faces"][0]["gender"] == "F"
    assert records[1]["faces"] == [] and "NoFaceFound" in records[1]["error"]


def test_selfie_path_imports_no_tensorflow_mtcnn_or_mlflow(tmp_path):
    home = make_home(tmp_path / "home")
    assert heavy_modules_after(["recommend", "--selfie", str(ASTRONAUT), "--home", str(home)]) == []


def test_batch_selfie_rows_are_profiled_and_bad_photos_rejected(tmp_path):
    home = make_home(tmp_path / "home")
    audience = tmp_path / "a.csv"
    audience.write_text(f"user_id,selfie\ns1,{ASTRONAUT}\ns2,{blank_photo(tmp_path / 'wall.jpg')}\ns3,{tmp_path / 'gone.jpg'}\n")
    summary = batch_score(home, audience, tmp_path / "o.parquet", k=2, campaign=None, version=None,
                          rules=CampaignRules(), show_progress=False)
    assert (summary.n_cold, summary.n_selfie, summary.n_rejected) == (1, 1, 2)
    assert pl.read_parquet(tmp_path / "o.parquet")["item_id"].to_list() == [12, 13]
    rejects = pl.read_csv(summary.rejects_path)
    assert rejects["user_id"].to_list() == ["s2", "s3"]
    assert all(reason.startswith("selfie: ") for reason in rejects["reason"])
    # The photos are never copied: the only files are the inputs and the outputs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "home", "o.parquet", "o.rejects.csv", "wall.jpg"]
