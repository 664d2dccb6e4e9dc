"""The labelling page in headless Chromium, end to end against a live API process: sign in,
label items of every task kind with the model's guess prefilled, skip, undo, and read the
stored labels back through the API."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from page_helpers import (
    LiveServer,
    create_project,
    create_token,
    picture,
    register_model,
    upload,
)

pytestmark = pytest.mark.integration
NOTHING_LEFT = -1
SCREENSHOTS = os.environ.get("XM_PAGE_SCREENSHOTS")  # a folder: save one picture per task kind


def sign_in(page: Any, server: LiveServer, token: str, annotator: str) -> int:
    page.goto(server.url + "/")
    page.fill("#signin-token", token)
    page.fill("#signin-annotator", annotator)
    page.click("#signin-submit")
    return wait_for_item(page, "")


def wait_for_item(page: Any, previous: str | int) -> int:
    """Wait until another item is on screen, its image loaded; return its id (or
    ``NOTHING_LEFT`` once the page says there is nothing left to label)."""
    page.wait_for_function(
        "old => { const id = document.body.dataset.itemId; const img = document.getElementById('image');"
        " return id && id !== String(old) && (id === 'none' || (img.complete && img.naturalWidth > 0)); }",
        arg="none" if previous == NOTHING_LEFT else str(previous),
    )
    shown = page.evaluate("document.body.dataset.itemId")
    return NOTHING_LEFT if shown == "none" else int(shown)


def current(page: Any) -> int:
    return int(page.evaluate("document.body.dataset.itemId"))


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"page-{name}.png"))


def label_of(server: LiveServer, token: str, item_id: int) -> Any:
    with server.client(token) as client:
        response = client.get(f"/items/{item_id}")
        response.raise_for_status()
        return response.json()["label"]


def prediction_of(server: LiveServer, token: str, item_id: int) -> dict[str, Any]:
    with server.client(token) as client:
        response = client.get(f"/items/{item_id}/prediction")
        response.raise_for_status()
        return dict(response.json()["prediction"])


def project_with_model(
    server: LiveServer, task: dict[str, Any], count: int, **picture_args: Any
) -> tuple[int, str, str, list[dict[str, Any]]]:
    """A project with ``count`` images, an active model that scored them, an annotator token."""
    project_id, owner = create_project(server, task)
    items = upload(
        server,
        project_id,
        owner,
        [(f"img{i}.png", picture(1000 * project_id + i, **picture_args)) for i in range(count)],
    )
    register_model(
        server,
        project_id,
        task,
        scores=[(item["id"], 1.0 - i / count, i % 2) for i, item in enumerate(items)],
    )
    _tid, annotator = create_token(server, project_id, owner)
    return project_id, owner, annotator, items


def test_classification_keys_skip_undo(page: Any, server: LiveServer) -> None:
    task = {"kind": "classification", "classes": ["cat", "dog", "bird"]}
    _pid, owner, token, _items = project_with_model(server, task, 8)
    shown = sign_in(page, server, token, "alice")
    # The model's guess is shown and preselected.
    guess = prediction_of(server, token, shown)
    assert page.locator("#guess").is_visible()
    assert page.locator(".classes button.selected").get_attribute("data-class") == guess["class"]
    assert page.locator("#notice").is_hidden()
    screenshot(page, "classification")

    expected: dict[int, str] = {}
    for key in ("1", "2", "3"):
        expected[shown] = task["classes"][int(key) - 1]
        page.keyboard.press(key)
        shown = wait_for_item(page, shown)
    skipped = shown
    page.keyboard.press("s")
    shown = wait_for_item(page, skipped)

    # Undo brings the last labelled item back, with its label cleared in the service.
    last = list(expected)[-1]
    page.keyboard.press("u")
    wait_for_item(page, shown)
    assert current(page) == last
    page.wait_for_function("() => !document.getElementById('status').textContent.startsWith('sav')")
    assert label_of(server, owner, last) is None
    page.keyboard.press("Enter")  # the undone label is prefilled: Enter stores it again
    wait_for_item(page, last)

    for item_id, name in expected.items():
        assert label_of(server, owner, item_id) == {"class": name}
    assert label_of(server, owner, skipped) is None


def set_number(page: Any, target: str, value: str) -> None:
    field = page.locator(f"#tool input[data-target='{target}']")
    field.click()
    field.press("Control+A")
    page.keyboard.type(value)


def test_regression_prefilled_typed_and_enter(page: Any, server: LiveServer) -> None:
    task = {"kind": "regression", "targets": ["age", "height"], "ranges": {"age": [0, 120]}}
    _pid, owner, token, _items = project_with_model(server, task, 8)
    shown = sign_in(page, server, token, "rita")
    guess = prediction_of(server, token, shown)["values"]
    age = page.locator("#tool input[data-target='age']")
    height = page.locator("#tool input[data-target='height']")
    # Prefilled with the model's guess (clamped into the known range), focused for typing.
    assert float(age.input_value()) == pytest.approx(min(max(guess["age"], 0), 120), abs=0.006)
    assert float(height.input_value()) == pytest.approx(guess["height"], abs=0.006)
    assert page.locator("#tool .range").first.inner_text() == "range 0 – 120"
    screenshot(page, "regression")

    expected: dict[int, dict[str, float]] = {}
    # 1: accept the guess as it stands.
    expected[shown] = {"age": float(age.input_value()), "height": float(height.input_value())}
    page.keyboard.press("Enter")
    shown = wait_for_item(page, shown)
    # 2 and 3: type the numbers.
    for typed_age, typed_height in (("31.5", "170"), ("7", "121.25")):
        set_number(page, "age", typed_age)
        set_number(page, "height", typed_height)
        expected[shown] = {"age": float(typed_age), "height": float(typed_height)}
        page.keyboard.press("Enter")
        shown = wait_for_item(page, shown)
    # Out of range: refused on the page, nothing sent, the item stays.
    set_number(page, "age", "500")
    page.keyboard.press("Enter")
    assert "must lie in 0 – 120" in page.locator("#status").inner_text()
    assert current(page) == shown and label_of(server, owner, shown) is None
    skipped = shown
    page.click("#skip")
    shown = wait_for_item(page, skipped)
    last = list(expected)[-1]
    page.click("#undo")
    wait_for_item(page, shown)
    assert current(page) == last and label_of(server, owner, last) is None
    assert float(age.input_value()) == expected[last]["age"]  # the undone label comes back
    set_number(page, "age", "8")
    expected[last]["age"] = 8.0
    page.keyboard.press("Enter")
    wait_for_item(page, last)

    for item_id, values in expected.items():
        assert label_of(server, owner, item_id) == {"values": values}
    assert label_of(server, owner, skipped) is None


def image_box(page: Any) -> dict[str, float]:
    return dict(page.locator("#image").bounding_box())


def click_at(page: Any, fx: float, fy: float) -> None:
    box = image_box(page)
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])


def test_keypoints_clicks_drag_occluded_absent_and_exif(page: Any, server: LiveServer) -> None:
    task = {"kind": "keypoints", "points": ["left_eye", "right_eye", "nose"]}
    project_id, owner = create_project(server, task)
    files = [(f"k{i}.png", picture(9000 + i, size=(64, 48))) for i in range(5)]
    # Stored 80 wide, 40 high; EXIF says "rotate 90° clockwise to view".
    files.append(("rotated.jpg", picture(9100, size=(80, 40), exif_orientation=6)))
    items = upload(server, project_id, owner, files)
    rotated = items[-1]
    _tid, token = create_token(server, project_id, owner)
    shown = sign_in(page, server, token, "kim")
    # No model yet: the cold-start order serves, and the page says so.
    assert "Cold start" in page.locator("#notice").inner_text()
    assert page.locator("#next-point-name").inner_text() == "left_eye"

    clicks = {"left_eye": (0.25, 0.3), "right_eye": (0.75, 0.3), "nose": (0.5, 0.6)}
    expected: dict[int, list[list[float]]] = {}
    labelled: list[int] = []
    skipped = None
    while len(labelled) < 3 or rotated["id"] not in labelled:
        meta = next(item for item in items if item["id"] == shown)
        width, height = meta["width"], meta["height"]
        box = image_box(page)
        # What is shown is the stored image, upright, at the stored aspect ratio.
        assert box["width"] / box["height"] == pytest.approx(width / height, rel=0.01)
        assert page.evaluate("document.getElementById('image').naturalWidth") == width
        if skipped is None and shown != rotated["id"]:
            skipped = shown
            page.keyboard.press("s")
            shown = wait_for_item(page, shown)
            continue
        points = []
        for name, (fx, fy) in clicks.items():
            assert page.locator("#next-point-name").inner_text() == name
            click_at(page, fx, fy)
            points.append([fx * width, fy * height, 2])
        if not labelled:
            # One drag: move the nose from where it was placed.
            box = image_box(page)
            page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.6 * box["height"])
            page.mouse.down()
            page.mouse.move(box["x"] + 0.4 * box["width"], box["y"] + 0.7 * box["height"], steps=5)
            page.mouse.up()
            points[2] = [0.4 * width, 0.7 * height, 2]
            page.keyboard.press("o")  # the dragged (selected) nose is occluded
            points[2][2] = 1
            screenshot(page, "keypoints")
        elif len(labelled) == 1:
            page.keyboard.press("Backspace")  # take back the nose...
            page.keyboard.press("x")  # ...and mark it absent
            points[2] = [0, 0, 0]
        page.keyboard.press("Enter")
        expected[shown] = points
        labelled.append(shown)
        shown = wait_for_item(page, shown)
        if shown == NOTHING_LEFT:
            break

    # Undo the last one and label it again with the same clicks.
    page.keyboard.press("u")
    wait_for_item(page, shown)
    assert current(page) == labelled[-1] and label_of(server, owner, labelled[-1]) is None
    page.keyboard.press("Enter")
    wait_for_item(page, labelled[-1])

    for item_id, points in expected.items():
        stored = label_of(server, owner, item_id)["points"]
        assert [p[2] for p in stored] == [p[2] for p in points]
        for got, want in zip(stored, points, strict=True):
            assert abs(got[0] - want[0]) <= 1 and abs(got[1] - want[1]) <= 1, (item_id, got, want)
    assert skipped is not None and label_of(server, owner, skipped) is None
    stored_rotated = next(i for i in items if i["id"] == rotated["id"])
    assert (stored_rotated["width"], stored_rotated["height"]) == (40, 80)  # upright at upload


def most_isolated(points: dict[str, list[float]], exclude: str | None = None) -> str:
    """The point farthest from its nearest neighbour."""

    def gap(name: str) -> float:
        return min(math.dist(points[name], at) for other, at in points.items() if other != name)

    return max((n for n in points if n != exclude), key=gap)


def test_keypoints_prefilled_by_the_model_take_only_drags(page: Any, server: LiveServer) -> None:
    task = {"kind": "keypoints", "points": [f"p{i}" for i in range(68)]}  # a face
    _pid, owner, token, items = project_with_model(server, task, 3, size=(60, 60))
    shown = sign_in(page, server, token, "lee")
    guess = prediction_of(server, token, shown)["points"]
    # Every point is already placed by the model: nothing is asked for, a click places nothing.
    assert "All points placed" in page.locator(".next-point").inner_text()
    assert page.locator("circle.kp.predicted").count() == 68
    screenshot(page, "keypoints-prefilled")
    # Grab points no other circle covers (the topmost circle under the pointer is dragged).
    name = most_isolated(guess)
    gx, gy = guess[name]
    box = image_box(page)
    scale = box["width"] / 60
    page.mouse.move(box["x"] + gx * scale, box["y"] + gy * scale)
    page.mouse.down()
    page.mouse.move(box["x"] + 10 * scale, box["y"] + 50 * scale, steps=4)
    page.mouse.up()
    # Zoomed in (small images): a drag still lands in image pixels.
    page.keyboard.press("+")
    assert image_box(page)["width"] == pytest.approx(2 * box["width"], rel=0.01)
    zoomed = most_isolated({**guess, name: [10, 50]}, exclude=name)
    circle = page.locator(f"circle[data-name='{zoomed}']")
    circle.scroll_into_view_if_needed()
    at = circle.bounding_box()
    scale = image_box(page)["width"] / 60
    start = (at["x"] + at["width"] / 2, at["y"] + at["height"] / 2)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] - 3 * scale, start[1] + 2 * scale, steps=3)
    page.mouse.up()
    moved = {name: (10, 50), zoomed: (guess[zoomed][0] - 3, guess[zoomed][1] + 2)}
    page.keyboard.press("Enter")
    wait_for_item(page, shown)
    stored = label_of(server, owner, shown)["points"]
    for index, (got, point) in enumerate(zip(stored, task["points"], strict=True)):
        want = moved.get(point, guess[point])
        assert abs(got[0] - want[0]) <= 1 and abs(got[1] - want[1]) <= 1, (index, got, want)
        assert got[2] == 2


def test_two_annotators_never_see_the_same_item(browser: Any, server: LiveServer) -> None:
    task = {"kind": "classification", "classes": ["a", "b"]}
    project_id, owner = create_project(server, task)
    upload(server, project_id, owner, [(f"t{i}.png", picture(9500 + i)) for i in range(14)])
    _tid, token = create_token(server, project_id, owner)
    contexts = [browser.new_context(viewport={"width": 900, "height": 700}) for _ in range(2)]
    try:
        pages = [context.new_page() for context in contexts]
        shown = [
            sign_in(p, server, token, name) for p, name in zip(pages, ("ann", "ben"), strict=True)
        ]
        seen: list[set[int]] = [set(), set()]
        for step in range(5):
            assert shown[0] != shown[1]
            for index, p in enumerate(pages):
                seen[index].add(shown[index])
                p.keyboard.press("1" if step % 2 else "2")
                shown[index] = wait_for_item(p, shown[index])
        assert not seen[0] & seen[1]
        # Closing a page gives its leases back at once.
        with server.client(owner) as client:

            def leased() -> int:
                listing = client.get(f"/projects/{project_id}/items", params={"status": "leased"})
                return len(listing.json()["items"])

            before = leased()
            pages[0].goto("about:blank")
            for _ in range(50):
                if leased() < before:
                    break
                pages[1].wait_for_timeout(100)
            assert leased() < before
    finally:
        for context in contexts:
            context.close()


def test_revoked_token_returns_to_sign_in(page: Any, server: LiveServer) -> None:
    task = {"kind": "classification", "classes": ["a", "b"]}
    project_id, owner = create_project(server, task)
    upload(server, project_id, owner, [(f"r{i}.png", picture(9700 + i)) for i in range(3)])
    token_id, token = create_token(server, project_id, owner)
    shown = sign_in(page, server, token, "rev")
    with server.client(owner) as client:
        assert client.delete(f"/projects/{project_id}/tokens/{token_id}").status_code in (200, 204)
    page.keyboard.press("1")
    page.wait_for_selector("#signin-message:visible")
    assert "revoked" in page.locator("#signin-message").inner_text()
    assert page.evaluate("sessionStorage.getItem('xm.token')") is None
    assert label_of(server, owner, shown) is None


def test_no_page_action_reaches_another_projects_items(page: Any, server: LiveServer) -> None:
    task = {"kind": "classification", "classes": ["a", "b"]}
    mine, my_owner = create_project(server, task)
    theirs, their_owner = create_project(server, task)
    upload(server, mine, my_owner, [("m.png", picture(9800))])
    (other,) = upload(server, theirs, their_owner, [("t.png", picture(9801))])
    register_model(server, theirs, task)
    _tid, token = create_token(server, mine, my_owner)
    sign_in(page, server, token, "iso")
    # Every call the page makes, aimed at the other project's ids, with the page's own token.
    statuses = page.evaluate(
        """async ([item, project]) => {
            const token = sessionStorage.getItem('xm.token');
            const call = async (method, path, body) => (await fetch(path, {
                method, body: body && JSON.stringify(body),
                headers: {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'},
            })).status;
            return [
                await call('GET', `/items/${item}`),
                await call('GET', `/items/${item}/image`),
                await call('GET', `/items/${item}/prediction`),
                await call('PUT', `/items/${item}/label`, {class: 'a'}),
                await call('DELETE', `/items/${item}/label`),
                await call('GET', `/projects/${project}/suggest?k=1&annotator=iso`),
                await call('POST', `/projects/${project}/leases/renew?annotator=iso`),
                await call('DELETE', `/projects/${project}/leases?annotator=iso&item_id=${item}`),
                await call('GET', `/projects/${project}/stats`),
            ];
        }""",
        [other["id"], theirs],
    )
    assert statuses == [404] * len(statuses)
    assert label_of(server, their_owner, other["id"]) is None


def test_classification_filter_box_for_many_classes(page: Any, server: LiveServer) -> None:
    task = {"kind": "classification", "classes": [f"bird-{i:02d}" for i in range(30)] + ["dog"]}
    project_id, owner = create_project(server, task)
    upload(server, project_id, owner, [(f"f{i}.png", picture(9600 + i)) for i in range(3)])
    _tid, token = create_token(server, project_id, owner)
    shown = sign_in(page, server, token, "fil")
    assert page.locator("#tool input.filter").is_visible()
    assert page.locator(".classes button:visible").count() == 31
    page.keyboard.type("bird-1")  # the filter box has the focus; digits that match are typed
    assert page.locator(".classes button:visible").count() == 10
    page.keyboard.press("Enter")  # the first match is selected: Enter takes it
    first = shown
    shown = wait_for_item(page, shown)
    assert label_of(server, owner, first) == {"class": "bird-10"}
    page.keyboard.type("do")
    assert page.locator(".classes button:visible").all_inner_texts() == ["1\ndog"]
    page.keyboard.press("1")  # no class holds "do1": the digit picks the first one shown
    wait_for_item(page, shown)
    assert label_of(server, owner, shown) == {"class": "dog"}


def test_cannot_be_labelled_flag_undo_and_owner_view(page: Any, server: LiveServer) -> None:
    task = {"kind": "classification", "classes": ["a", "b"]}
    project_id, owner = create_project(server, task)
    upload(server, project_id, owner, [(f"c{i}.png", picture(9200 + i)) for i in range(4)])

    def flag_of(item_id: int) -> tuple[Any, Any]:
        with server.client(owner) as client:
            item = client.get(f"/items/{item_id}").json()
        return item["unlabellable_at"], item["unlabellable_reason"]

    shown = sign_in(page, server, owner, "owen")
    page.keyboard.press("c")
    page.keyboard.type("two cats, one dog")
    page.keyboard.press("Escape")  # changed my mind: nothing sent
    assert page.locator("#flag-form").is_hidden() and flag_of(shown)[0] is None
    page.keyboard.press("c")
    page.keyboard.type("blurred")
    page.keyboard.press("Enter")
    flagged = shown
    shown = wait_for_item(page, flagged)
    assert flag_of(flagged)[1] == "blurred"
    page.keyboard.press("u")  # undo the flag: the item is back on screen
    wait_for_item(page, shown)
    assert current(page) == flagged and flag_of(flagged) == (None, None)
    page.click("#unlabellable")
    page.keyboard.type("not a bird")
    page.keyboard.press("Enter")
    wait_for_item(page, flagged)
    assert flag_of(flagged)[1] == "not a bird"
    # The owner sees it with its reason and can return it to the queue.
    page.click("#owner-toggle")
    row = page.locator(f"#flagged tr[data-item-id='{flagged}']")
    row.wait_for()
    assert "not a bird" in row.inner_text()
    row.locator("button").click()
    page.wait_for_function(
        f"() => !document.querySelector(\"#flagged tr[data-item-id='{flagged}']\")"
    )
    assert flag_of(flagged) == (None, None)


def test_the_page_loads_nothing_from_another_host(browser: Any, server: LiveServer) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        refused: list[str] = []
        page.on(
            "console",
            lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
        )
        response = page.goto(server.url + "/")
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        # Anything from another origin is refused by the browser, whatever injects it.
        page.evaluate(
            "() => { const img = new Image(); img.src = 'http://127.0.0.2:9/x.png';"
            " document.body.append(img); fetch('http://127.0.0.2:9/x').catch(() => {}); }"
        )
        page.wait_for_function("() => true")
        page.wait_for_timeout(300)
        assert len(refused) >= 2, refused
        assert page.request.get(server.url + "/page/..%2f..%2fmain.py").status == 404
    finally:
        context.close()
