"""`recommend --liked/--disliked` on the hand-made 2-D bundle of serving_fixtures, given an
item-item part whose effect is worked out by hand.

Item positions 0..4 are items 10..14 (10, 11 action; 12, 13 romance; 14 a little of both).
The cosine table says 12 and 13 go together (0.6), as do 10 and 11 (0.5); 14 is a weak
neighbour of all. A new visitor's weight is 2, so a like of 12 adds 2 x 0.6 = 1.2 to item 13.
Known users (no EASE table here) get 2 x the mean over their likes.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from pipelines.recommend import recommend_for_user, recommend_with_items
from recsys.item_item import ItemItemModel, ItemItemTable
from recsys.serving import ServingBundle, save_item_item
from serving_fixtures import heavy_modules_after, make_home

NEIGHBOURS = np.array([[1, 4], [0, 4], [3, 4], [2, 4], [0, 2]], dtype=np.int32)
WEIGHTS = np.array([[0.5, 0.1], [0.5, 0.1], [0.6, 0.1], [0.6, 0.1], [0.1, 0.1]], dtype=np.float32)


def home_with_item_item(tmp_path):
    home = make_home(tmp_path)
    bundle = home / "bundles" / "v1"
    manifest = json.loads((bundle / "manifest.json").read_text())
    model = ItemItemModel(
        cosine=ItemItemTable(weights=WEIGHTS, neighbours=NEIGHBOURS), ease=None, min_rating=4.0,
        new_visitor_weight=2.0, known_user_ease_weight=3.0, known_user_cosine_weight=2.0,
    )
    manifest["item_item"] = save_item_item(bundle, model)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return home


def recommend_json(home, *args):
    result = CliRunner().invoke(cli, ["recommend", *args, "-k", "3", "--json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_like_moves_a_related_item_into_the_list_and_says_why(tmp_path):
    home = home_with_item_item(tmp_path)
    before = recommend_json(home, "--age", "40", "--gender", "M")
    # A man gets action: 10 (1.0), 11 (0.9), 14 (0.3); romance scores 0.
    assert [row["item_id"] for row in before["items"]] == [10, 11, 14]
    after = recommend_json(home, "--age", "40", "--gender", "M", "--liked", "12")
    # 13: 0 + 2 x 0.6 = 1.2 goes first; 12 itself (liked) is never listed.
    assert [row["item_id"] for row in after["items"]] == [13, 10, 11]
    assert [row["score"] for row in after["items"]] == pytest.approx([1.2, 1.0, 0.9])
    assert [row["reason"] for row in after["items"]] == ["liked_items", "demographic", "demographic"]
    assert [row["because"] for row in after["items"]] == [[12], [], []]
    assert after["basis"]["n_liked"] == 1


def test_a_dislike_pushes_its_neighbours_down(tmp_path):
    home = home_with_item_item(tmp_path)
    result = recommend_json(home, "--age", "40", "--gender", "M", "--liked", "12", "--disliked", "11")
    # 10: 1.0 - 0.5 x 2 x 0.5 = 0.5; 14: 0.3 + 2 x 0.1 - 0.5 x 2 x 0.1 = 0.4; 11 is excluded.
    assert [row["item_id"] for row in result["items"]] == [13, 10, 14]
    assert [row["score"] for row in result["items"]] == pytest.approx([1.2, 0.5, 0.4])


def test_a_known_user_with_a_new_like_keeps_their_seen_items_out(tmp_path):
    home = home_with_item_item(tmp_path)
    # User 1 (action vector) saw 10 with rating 5: a like in the warehouse. With the new like of
    # 12, the mean cosine over two likes at weight 2: 11 gets 0.9 + 0.5 = 1.4, 13 gets 0 + 0.6,
    # 14 gets 0.3 + (0.1 + 0.1) = 0.5; 10 (seen) and 12 (liked) are out.
    result = recommend_with_items(home, age=None, gender=None, liked=[12], user_id=1, k=3)
    assert result.items["item_id"].to_list() == [11, 13, 14]
    assert result.items["score"].to_list() == pytest.approx([1.4, 0.6, 0.5])
    assert result.items["reason"].to_list() == ["personal_history", "liked_items", "personal_history"]
    assert result.items["because"].to_list() == [[], [12], []]
    plain = recommend_for_user(home, 1, k=2)  # the plain command uses the warehouse likes too
    assert plain.items["item_id"].to_list() == [11, 14]


def test_unknown_or_contradictory_items_are_one_clear_error(tmp_path):
    home = home_with_item_item(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["recommend", "--age", "30", "--liked", "12,999", "--home", str(home)])
    assert result.exit_code == 1 and "--liked: item ids [999] are not in the catalog" in result.output
    result = runner.invoke(cli, ["recommend", "--liked", "12", "--disliked", "12", "--home", str(home)])
    assert result.exit_code == 1 and "both liked and disliked" in result.output
    result = runner.invoke(cli, ["recommend", "--liked", "twelve", "--home", str(home)])
    assert result.exit_code == 2 and "expected item ids separated by commas" in result.output


def test_bundles_without_the_item_item_part_still_load_and_take_likes(tmp_path):
    home = make_home(tmp_path)
    assert ServingBundle.load(home / "bundles" / "v1").item_item is None
    # The taste-vector fallback: liking romance item 12 lifts romance item 13 for a man.
    after = recommend_json(home, "--age", "40", "--gender", "M", "--liked", "12")
    assert 13 in [row["item_id"] for row in after["items"]]


def test_recommend_with_likes_imports_neither_tensorflow_nor_mlflow(tmp_path):
    home = home_with_item_item(tmp_path)
    assert heavy_modules_after(["recommend", "--age", "30", "--liked", "12", "--home", str(home)]) == []
