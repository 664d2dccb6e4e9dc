"""Results ↔ labels, and keypoint percentages ↔ pixels on non-square images."""

from __future__ import annotations

import pytest

from label_studio_bridge.convert import (
    UnusableAnnotation,
    annotation_label,
    pct_to_px,
    prediction_result,
    px_to_pct,
)
from label_studio_bridge.labelling_config import parse_config

KEYPOINTS = parse_config(
    '<View><Image name="image" value="$image"/><KeyPointLabels name="kp" toName="image">'
    '<Label value="left"/><Label value="right"/><Label value="tail"/></KeyPointLabels></View>'
)
CLASSIFY = parse_config(
    '<View><Image name="image" value="$image"/><Choices name="c" toName="image">'
    '<Choice value="cat"/><Choice value="dog"/></Choices></View>'
)
REGRESS = parse_config(
    '<View><Image name="image" value="$image"/><Number name="age" toName="image"/>'
    '<Number name="height" toName="image"/></View>'
)


@pytest.mark.parametrize(("width", "height"), [(640, 120), (37, 301), (1, 999)])
def test_percent_pixel_round_trip_on_non_square_images(width: int, height: int) -> None:
    for x_px, y_px in [(0.0, 0.0), (width / 3, height * 0.77), (float(width), float(height))]:
        x_pct, y_pct = px_to_pct(x_px, width), px_to_pct(y_px, height)
        assert pct_to_px(x_pct, width) == pytest.approx(x_px, abs=1e-9)
        assert pct_to_px(y_pct, height) == pytest.approx(y_px, abs=1e-9)
    # the axes are not mixed up: the same percentage is a different pixel on each axis
    assert pct_to_px(50, width) == width / 2 and pct_to_px(50, height) == height / 2


def test_keypoint_prediction_and_annotation_agree_on_a_wide_image() -> None:
    width, height = 400, 100
    guess = {"points": {"left": [100.0, 25.0], "right": [300.0, 75.0], "tail": [400.0, 0.0]}}
    result = prediction_result(KEYPOINTS, guess, width, height)
    assert [r["value"]["keypointlabels"] for r in result] == [["left"], ["right"], ["tail"]]
    assert result[0]["value"]["x"] == pytest.approx(25.0)
    assert result[0]["value"]["y"] == pytest.approx(25.0)
    assert result[1]["value"]["x"] == pytest.approx(75.0)
    assert result[1]["value"]["y"] == pytest.approx(75.0)
    assert all(r["original_width"] == 400 and r["original_height"] == 100 for r in result)
    assert all(r["type"] == "keypointlabels" and r["to_name"] == "image" for r in result)
    # an annotation made of those results comes back in pixels
    label = annotation_label(KEYPOINTS, result, width, height)
    assert label == {"points": [[100.0, 25.0, 2], [300.0, 75.0, 2], [400.0, 0.0, 2]]}


def test_unplaced_keypoints_are_absent() -> None:
    result = [
        {
            "from_name": "kp",
            "type": "keypointlabels",
            "value": {"x": 10.0, "y": 90.0, "keypointlabels": ["right"]},
        }
    ]
    assert annotation_label(KEYPOINTS, result, 50, 200) == {
        "points": [[0.0, 0.0, 0], [5.0, 180.0, 2], [0.0, 0.0, 0]]
    }


def test_a_point_placed_twice_is_refused() -> None:
    entry = {
        "from_name": "kp",
        "type": "keypointlabels",
        "value": {"x": 1, "y": 1, "keypointlabels": ["left"]},
    }
    with pytest.raises(UnusableAnnotation, match="placed twice"):
        annotation_label(KEYPOINTS, [entry, entry], 10, 10)


def test_classification_round_trip() -> None:
    result = prediction_result(CLASSIFY, {"class": "dog", "probabilities": {}}, 5, 5)
    assert result == [
        {"to_name": "image", "from_name": "c", "type": "choices", "value": {"choices": ["dog"]}}
    ]
    assert annotation_label(CLASSIFY, result, 5, 5) == {"class": "dog"}
    with pytest.raises(UnusableAnnotation, match="no choice"):
        annotation_label(CLASSIFY, [], 5, 5)


def test_regression_round_trip_and_missing_target() -> None:
    result = prediction_result(REGRESS, {"values": {"age": 31.5, "height": 170.0}}, 5, 5)
    assert [(r["from_name"], r["value"]["number"]) for r in result] == [
        ("age", 31.5),
        ("height", 170.0),
    ]
    assert annotation_label(REGRESS, result, 5, 5) == {"values": {"age": 31.5, "height": 170.0}}
    with pytest.raises(UnusableAnnotation, match="height"):
        annotation_label(REGRESS, result[:1], 5, 5)
    bad = [{**result[0], "value": {"number": float("nan")}}, result[1]]
    with pytest.raises(UnusableAnnotation, match="finite"):
        annotation_label(REGRESS, bad, 5, 5)
