"""Labelling configs → our task specs, and the errors that name an unsupported tag."""

from __future__ import annotations

import pytest

from label_studio_bridge.labelling_config import UnsupportedConfig, parse_config

CLASSIFY = """<View>
  <Header value="Which animal?"/>
  <Image name="img" value="$image"/>
  <Choices name="animal" toName="img" choice="single">
    <Choice value="cat"/><Choice value="dog" alias="doggo"/><Choice value="bird"/>
  </Choices>
</View>"""
REGRESS = """<View><Image name="image" value="$photo"/>
  <Number name="age" toName="image" min="0" max="120"/>
  <Number name="weight" toName="image"/>
</View>"""
KEYPOINTS = """<View><Image name="image" value="$image"/>
  <KeyPointLabels name="kp" toName="image"><Label value="left"/><Label value="right"/></KeyPointLabels>
</View>"""


def test_choices_map_to_classification() -> None:
    mapping = parse_config(CLASSIFY)
    assert mapping.kind == "classification"
    assert mapping.task == {"kind": "classification", "classes": ["cat", "doggo", "bird"]}
    assert (mapping.image_name, mapping.image_key, mapping.control.name) == (
        "img",
        "image",
        "animal",
    )


def test_numbers_map_to_regression_targets_with_ranges() -> None:
    mapping = parse_config(REGRESS)
    assert mapping.task == {
        "kind": "regression",
        "targets": ["age", "weight"],
        "ranges": {"age": (0.0, 120.0)},
    }
    assert mapping.image_key == "photo"
    assert [c.name for c in mapping.controls] == ["age", "weight"]


def test_keypoint_labels_map_to_one_point_per_label() -> None:
    mapping = parse_config(KEYPOINTS)
    assert mapping.task == {"kind": "keypoints", "points": ["left", "right"]}


@pytest.mark.parametrize(
    ("xml", "named"),
    [
        (
            '<View><Image name="i" value="$image"/><RectangleLabels name="box" toName="i">'
            '<Label value="car"/></RectangleLabels></View>',
            "<RectangleLabels name='box'>",
        ),
        (
            '<View><Image name="i" value="$image"/><Choices name="c" toName="i" choice="multiple">'
            '<Choice value="a"/><Choice value="b"/></Choices></View>',
            "<Choices name='c'>",
        ),
        (
            '<View><Image name="i" value="$image"/><TextArea name="t" toName="i"/></View>',
            "<TextArea name='t'>",
        ),
        (
            '<View><Image name="i" value="$image"/><Number name="n" toName="i"/>'
            '<Choices name="c" toName="i"><Choice value="a"/><Choice value="b"/></Choices></View>',
            "<Choices name='c'>",
        ),
        (
            '<View><Text name="t" value="$text"/><Choices name="c" toName="t">'
            '<Choice value="a"/><Choice value="b"/></Choices></View>',
            "<Text name='t'>",
        ),
    ],
)
def test_unsupported_configs_name_the_tag(xml: str, named: str) -> None:
    with pytest.raises(UnsupportedConfig) as caught:
        parse_config(xml)
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("xml", "says"),
    [
        ("<View><Image", "not valid XML"),
        ('<View><Image name="i" value="$a"/><Image name="j" value="$b"/></View>', "2 <Image>"),
        ('<View><Image name="i" value="$a"/></View>', "no control tag"),
        (
            '<View><Image name="i" value="$a"/><Choices name="c" toName="i"><Choice value="a"/>'
            "</Choices></View>",
            "at least two",
        ),
        (
            '<View><Image name="i" value="$a"/><Choices name="c" toName="i"><Choice value="a"/>'
            '<Choice value="a"/></Choices></View>',
            "unique",
        ),
    ],
)
def test_malformed_configs_say_why(xml: str, says: str) -> None:
    with pytest.raises(UnsupportedConfig, match=says):
        parse_config(xml)
