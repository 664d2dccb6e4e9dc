"""The bridge against a real Label Studio, for every task kind, through both REST APIs:

* connecting the bridge creates our project with the mapped task; an unmappable config is
  refused, naming the tag;
* "retrieve predictions" puts every task's image into our project (dedup by sha256), and once a
  model exists gives each task our prediction, with scores whose ascending order is our
  ``/suggest`` order (Label Studio's own sort by prediction score included);
* annotations made through Label Studio's API arrive as our labels (keypoints within 0.5 px on
  non-square images), an update changes the label, a delete clears it;
* ``retrain_every`` annotations train a model, and the next predictions come from it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from bench.label_studio_live import Stack, wait_until
from label_studio_bridge.bridge import ANNOTATOR
from xmodel_client import XModelClient
from xmodel_client.models import Item

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WIDTH, HEIGHT = 48, 30  # non-square: percentages of each axis differ
TASKS = 12

CONFIGS = {
    "classification": """<View><Image name="image" value="$image"/>
  <Choices name="animal" toName="image" choice="single">
    <Choice value="cat"/><Choice value="dog"/>
  </Choices></View>""",
    "regression": """<View><Image name="image" value="$image"/>
  <Number name="age" toName="image" min="0" max="100"/></View>""",
    "keypoints": """<View><Image name="image" value="$image"/>
  <KeyPointLabels name="kp" toName="image"><Label value="left"/><Label value="right"/></KeyPointLabels>
</View>""",
}
EXPECTED_TASK = {
    "classification": {"kind": "classification", "classes": ["cat", "dog"]},
    "regression": {"kind": "regression", "targets": ["age"], "ranges": {"age": [0.0, 100.0]}},
    "keypoints": {"kind": "keypoints", "points": ["left", "right"], "flip_pairs": []},
}


def picture(seed: int) -> bytes:
    """A smooth random WIDTH x HEIGHT PNG, different for every seed."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    channels = [
        127
        + 120
        * np.sin(xs / rng.uniform(3, 9) + rng.uniform(0, 6))
        * np.cos(ys / rng.uniform(3, 9) + rng.uniform(0, 6))
        for _ in range(3)
    ]
    array = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def annotation(kind: str, n: int) -> tuple[list[dict[str, Any]], Callable[[dict[str, Any]], bool]]:
    """The n-th annotation of a kind (Label Studio result) and a check of our stored label."""
    base: dict[str, Any] = {"to_name": "image"}
    if kind == "classification":
        name = ["cat", "dog"][n % 2]
        result = [{**base, "from_name": "animal", "type": "choices", "value": {"choices": [name]}}]
        return result, lambda label: label == {"class": name}
    if kind == "regression":
        value = 10.0 + 7.5 * n
        result = [{**base, "from_name": "age", "type": "number", "value": {"number": value}}]
        return result, lambda label: label == {"values": {"age": value}}
    points = {"left": (10.0 + 5 * n, 20.0 + 3 * n), "right": (70.0 - 2 * n, 60.0 + 4 * n)}
    result = [
        {
            **base,
            "id": f"k{name}",
            "from_name": "kp",
            "type": "keypointlabels",
            "original_width": WIDTH,
            "original_height": HEIGHT,
            "image_rotation": 0,
            "value": {"x": x, "y": y, "width": 0.6, "keypointlabels": [name]},
        }
        for name, (x, y) in points.items()
    ]
    expected = [[x / 100 * WIDTH, y / 100 * HEIGHT] for x, y in points.values()]

    def check(label: dict[str, Any]) -> bool:
        stored = label.get("points") or []
        return len(stored) == 2 and all(
            abs(s[0] - e[0]) <= 0.5 and abs(s[1] - e[1]) <= 0.5 and s[2] == 2
            for s, e in zip(stored, expected, strict=True)
        )

    return result, check


class Session:
    """One Label Studio project wired to the bridge, and our view of it."""

    def __init__(self, stack: Stack, kind: str) -> None:
        self.stack, self.kind = stack, kind
        self.ls = stack.studio
        self.admin = XModelClient(stack.xmodel_url, stack.admin_token)
        project = self.ls.api(
            "POST", "/api/projects", json={"title": f"bridge {kind}", "label_config": CONFIGS[kind]}
        )
        self.ls_id = int(project["id"])
        self.images = [picture(seed + 100 * len(kind)) for seed in range(TASKS)]
        self.ls.api(
            "POST",
            f"/api/projects/{self.ls_id}/import",
            files=[
                (f"img{i:02d}.png", (f"img{i:02d}.png", data, "image/png"))
                for i, data in enumerate(self.images)
            ],
        )
        tasks = self.ls.api("GET", "/api/tasks", params={"project": self.ls_id, "page_size": 100})
        self.tasks = sorted(tasks["tasks"], key=lambda t: t["id"])
        assert len(self.tasks) == TASKS

    def connect(self) -> dict[str, Any]:
        return self.ls.api(
            "POST",
            "/api/ml",
            json={"url": self.stack.bridge_url, "project": self.ls_id, "title": "xmodel"},
        )

    def our_project(self) -> Any:
        found = [p for p in self.admin.list_projects() if p.name.startswith("label-studio ")]
        found = [p for p in found if p.name.split()[1].split(".")[0] == str(self.ls_id)]
        assert len(found) == 1, [p.name for p in self.admin.list_projects()]
        return found[0]

    def retrieve_predictions(self) -> None:
        self.ls.api(
            "POST",
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": self.ls_id},
            json={"selectedItems": {"all": True, "excluded": []}},
        )

    def predictions(self) -> list[dict[str, Any]]:
        return list(self.ls.api("GET", "/api/predictions", params={"project": self.ls_id}))

    def item_of(self, project_id: int) -> dict[int, Item]:
        """Task id -> our item (the bridge names uploads ``ls-task-<id>-...``)."""
        items = list(self.admin.iter_items(project_id))
        by_task = {}
        for item in items:
            task_id = int(item.original_name.split("-")[2])
            by_task[task_id] = item
        return by_task

    def annotate(self, task_index: int, n: int) -> tuple[int, Callable[[dict[str, Any]], bool]]:
        result, check = annotation(self.kind, n)
        task_id = self.tasks[task_index]["id"]
        made = self.ls.api("POST", f"/api/tasks/{task_id}/annotations", json={"result": result})
        return int(made["id"]), check


def bridge_errors(stack: Stack) -> list[str]:
    return list(httpx.get(f"{stack.bridge_url}/health").json()["events"]["errors"])


def labelled_and(
    check: Callable[[dict[str, Any]], bool],
) -> Callable[[dict[str, Any] | None], bool]:
    """A check of a stored label that first requires one."""
    return lambda label: label is not None and bool(label) and check(label)


def wait_for_label(
    admin: XModelClient, item_id: int, check: Callable[[dict[str, Any] | None], bool]
) -> None:
    wait_until(lambda: check(admin.get_item(item_id).label), timeout=60, what=f"item {item_id}")


def wait_for_model(admin: XModelClient, project_id: int, version: int) -> None:
    def active() -> bool:
        models = [m for m in admin.list_models(project_id) if m.is_active]
        return bool(models) and models[0].version >= version

    wait_until(active, timeout=600, interval=1, what=f"model v{version} of project {project_id}")


def suggest_order(admin: XModelClient, project_id: int) -> list[int]:
    try:
        answer = admin.suggest(project_id, k=200, annotator="order-check")
    finally:
        admin.release_leases(project_id, annotator="order-check")
    assert not answer.cold_start
    return [s.item_id for s in answer.items]


@pytest.mark.parametrize("kind", ["classification", "regression", "keypoints"])
def test_label_studio_round_trip(stack: Stack, kind: str) -> None:
    session = Session(stack, kind)
    admin = session.admin
    connected = session.connect()
    assert connected["state"] == "CO", connected
    project = session.our_project()
    assert project.task == EXPECTED_TASK[kind]
    assert project.retrain_every == 4

    # before any model: every image becomes an item (sha256 of the bytes), no prediction yet
    session.retrieve_predictions()
    items = session.item_of(project.id)
    assert sorted(items) == sorted(t["id"] for t in session.tasks)
    for index, task in enumerate(session.tasks):
        item = items[task["id"]]
        assert item.sha256 == hashlib.sha256(session.images[index]).hexdigest()
        assert (item.width, item.height) == (WIDTH, HEIGHT)
    assert session.predictions() == []
    # a second pass finds the same items: nothing uploaded twice
    session.retrieve_predictions()
    assert admin.project_stats(project.id).items == TASKS

    # four annotations arrive as labels, then retrain_every=4 trains model v1
    made = []
    for n in range(4):
        annotation_id, check = session.annotate(n, n)
        made.append(annotation_id)
        wait_for_label(admin, items[session.tasks[n]["id"]].id, labelled_and(check))
    wait_for_model(admin, project.id, 1)

    session.retrieve_predictions()
    predictions = session.predictions()
    assert len(predictions) == TASKS, predictions
    assert {p["model_version"] for p in predictions} == {"xmodel-v1"}
    by_task = {p["task"]: p for p in predictions}
    for task in session.tasks:
        guess = admin.item_prediction(items[task["id"]].id)
        result = by_task[task["id"]]["result"]
        if kind == "classification":
            assert result[0]["value"]["choices"] == [guess.prediction["class"]]
        elif kind == "regression":
            assert result[0]["value"]["number"] == pytest.approx(guess.prediction["values"]["age"])
        else:
            for entry in result:
                name = entry["value"]["keypointlabels"][0]
                x_px, y_px = guess.prediction["points"][name]
                assert entry["value"]["x"] / 100 * WIDTH == pytest.approx(x_px, abs=1e-6)
                assert entry["value"]["y"] / 100 * HEIGHT == pytest.approx(y_px, abs=1e-6)
                assert (entry["original_width"], entry["original_height"]) == (WIDTH, HEIGHT)

    # ascending prediction score = our /suggest order (the bridge's leases are all given back)
    order = suggest_order(admin, project.id)
    assert len(order) == TASKS - 4
    item_task = {item.id: task_id for task_id, item in items.items()}
    ascending = sorted(predictions, key=lambda p: p["score"])
    assert [p["task"] for p in ascending[: len(order)]] == [item_task[i] for i in order]
    # ... and Label Studio's own data manager sorts its tasks the same way, once the project
    # uses that model version's predictions (Settings > Predictions; the data manager's score
    # column reads the project's chosen version)
    session.ls.api("PATCH", f"/api/projects/{session.ls_id}", json={"model_version": "xmodel-v1"})
    view = session.ls.api(
        "POST",
        "/api/dm/views",
        json={"project": session.ls_id, "data": {"ordering": ["tasks:predictions_score"]}},
    )
    listed = session.ls.api(
        "GET", "/api/tasks", params={"project": session.ls_id, "view": view["id"], "page_size": 100}
    )
    assert [t["id"] for t in listed["tasks"]][: len(order)] == [item_task[i] for i in order]

    # an update changes the label; a delete clears it
    first = items[session.tasks[0]["id"]].id
    result, check = annotation(kind, 7)
    session.ls.api("PATCH", f"/api/annotations/{made[0]}", json={"result": result})
    wait_for_label(admin, first, labelled_and(check))
    second = items[session.tasks[1]["id"]].id
    session.ls.api("DELETE", f"/api/annotations/{made[1]}")
    wait_for_label(admin, second, lambda label: label is None)
    assert admin.project_stats(project.id).labelled == 3

    # five more annotations (8 labelled, 4 more than model v1 saw) train model v2 ...
    for n in range(4, 9):
        _, check = session.annotate(n, n)
        wait_for_label(admin, items[session.tasks[n]["id"]].id, labelled_and(check))
    wait_for_model(admin, project.id, 2)
    # ... and the next predictions come from it
    session.retrieve_predictions()
    fresh = [p for p in session.predictions() if p["model_version"] == "xmodel-v2"]
    assert sorted(p["task"] for p in fresh) == sorted(t["id"] for t in session.tasks)
    assert bridge_errors(stack) == []


def test_unsupported_config_is_refused_naming_the_tag(stack: Stack) -> None:
    config = (
        '<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image">'
        '<Label value="car"/></RectangleLabels></View>'
    )
    project = stack.studio.api(
        "POST", "/api/projects", json={"title": "boxes", "label_config": config}
    )
    answer = stack.studio.http.post(
        "/api/ml", json={"url": stack.bridge_url, "project": project["id"], "title": "xmodel"}
    )
    assert answer.status_code == 400, answer.text
    assert "setup" in answer.text
    direct = httpx.post(
        f"{stack.bridge_url}/setup",
        json={"project": f"{project['id']}.1", "schema": config},
    )
    assert direct.status_code == 400
    assert direct.json()["error"] == "bad_request"
    assert "<RectangleLabels name='box'>" in direct.json()["detail"]
    names = [p.name for p in XModelClient(stack.xmodel_url, stack.admin_token).list_projects()]
    assert not any(name.startswith(f"label-studio {project['id']}.") for name in names)


def test_bridge_refuses_malformed_requests(stack: Stack) -> None:
    for path, body in [
        ("/predict", {"tasks": "nope", "project": "1.1", "label_config": "<View/>"}),
        ("/predict", {"tasks": [], "project": "", "label_config": "<View/>"}),
        ("/setup", {"schema": "<View/>"}),
        ("/webhook", {"no": "action"}),
    ]:
        answer = httpx.post(f"{stack.bridge_url}{path}", json=body)
        assert answer.status_code == 400, (path, answer.text)
        assert set(answer.json()) == {"error", "detail"}
    assert ANNOTATOR  # the bridge's leases are held under this annotator name only briefly


def test_personal_access_token_reads_images_and_annotations(stack: Stack) -> None:
    """A personal access token (a JWT refresh token) is exchanged for an access token; an
    invalid one is refused with a clear error."""
    from label_studio_bridge.label_studio import LabelStudio, LabelStudioError

    studio = stack.studio
    personal = studio.api("POST", "/api/token")["token"]
    project = studio.api(
        "POST", "/api/projects", json={"title": "tokens", "label_config": CONFIGS["classification"]}
    )
    image = picture(999)
    studio.api(
        "POST",
        f"/api/projects/{project['id']}/import",
        files=[("a.png", ("a.png", image, "image/png"))],
    )
    task = studio.api("GET", "/api/tasks", params={"project": project["id"]})["tasks"][0]
    result, _ = annotation("classification", 1)
    studio.api("POST", f"/api/tasks/{task['id']}/annotations", json={"result": result})

    client = LabelStudio(studio.url, personal)
    broken = LabelStudio(studio.url, personal[:-4] + "AAAA")
    try:
        assert client.fetch_image(task["data"]["image"]) == image
        assert [a["result"] for a in client.task_annotations(task["id"])] == [result]
        with pytest.raises(LabelStudioError, match="refused the personal access token"):
            broken.task_annotations(task["id"])
    finally:
        client.close()
        broken.close()
        # one personal token per user: revoke it, so the test can run again on this instance
        studio.api("POST", "/api/token/blacklist", json={"refresh": personal})
    with pytest.raises(LabelStudioError, match="s3:// storage links"):
        LabelStudio(studio.url, studio.token).fetch_image("s3://bucket/key.png")


def test_new_tasks_become_items_and_start_training_queues_a_job(stack: Stack) -> None:
    """Tasks imported after the bridge is connected reach our pool at once (TASKS_CREATED),
    before anyone asks for a prediction; Label Studio's "Start training" queues a job."""
    studio = stack.studio
    admin = XModelClient(stack.xmodel_url, stack.admin_token)
    project = studio.api(
        "POST",
        "/api/projects",
        json={"title": "late tasks", "label_config": CONFIGS["classification"]},
    )
    backend = studio.api(
        "POST",
        "/api/ml",
        json={"url": stack.bridge_url, "project": project["id"], "title": "xmodel"},
    )
    ours = next(
        p for p in admin.list_projects() if p.name.startswith(f"label-studio {project['id']}.")
    )
    images = [picture(500 + n) for n in range(3)]
    studio.api(
        "POST",
        f"/api/projects/{project['id']}/import",
        files=[(f"n{n}.png", (f"n{n}.png", data, "image/png")) for n, data in enumerate(images)],
    )
    wait_until(lambda: admin.project_stats(ours.id).items == 3, timeout=60, what="3 items")
    shas = {item.sha256 for item in admin.iter_items(ours.id)}
    assert shas == {hashlib.sha256(data).hexdigest() for data in images}
    assert studio.api("GET", "/api/predictions", params={"project": project["id"]}) == []

    tasks = studio.api("GET", "/api/tasks", params={"project": project["id"]})["tasks"]
    for n, task in enumerate(tasks[:2]):
        result, _ = annotation("classification", n)
        studio.api("POST", f"/api/tasks/{task['id']}/annotations", json={"result": result})
    wait_until(lambda: admin.project_stats(ours.id).labelled == 2, timeout=60, what="2 labels")
    assert list(admin.iter_jobs(ours.id)) == []  # retrain_every=4 not reached
    studio.api("POST", f"/api/ml/{backend['id']}/train")
    jobs = wait_until(lambda: list(admin.iter_jobs(ours.id)), timeout=60, what="a job")
    assert admin.wait_for_job(jobs[0].id, timeout=600).status == "succeeded"
    assert bridge_errors(stack) == []
