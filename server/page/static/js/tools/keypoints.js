// Keypoints: click to place the named points in order (the next name is on screen), drag a
// point to move it, mark a point occluded (O) or absent (X), Backspace takes back the last
// placed point. The model's guess comes prefilled as draggable points, so nothing the model
// placed is asked for again. Coordinates are pixels of the stored image: the overlay's
// viewBox is the image's own size, so the SVG maps screen to image pixels exactly.

const SVG = "http://www.w3.org/2000/svg";
const VISIBLE = 2;
const OCCLUDED = 1;
const ABSENT = 0;
const RADIUS_PX = 6;  // on screen, whatever the zoom

function round(value) {
  return Math.round(value * 100) / 100;
}

export function createKeypointsTool({ task, root, overlay, submit, setStatus }) {
  const names = task.points;
  let points = names.map(() => null);  // {x, y, v, predicted} or null (not placed yet)
  let order = [];                      // indices in the order they were placed (for Backspace)
  let selected = -1;
  let width = 1;
  let height = 1;
  let dragging = -1;

  root.innerHTML = "";
  const next = document.createElement("p");
  next.className = "next-point";
  const tools = document.createElement("div");
  tools.className = "point-tools";
  const button = (html) => {
    const element = document.createElement("button");
    element.type = "button";
    element.innerHTML = html;
    return element;
  };
  const occludedButton = button("Occluded <kbd>O</kbd>");
  const absentButton = button("Absent <kbd>X</kbd>");
  const backButton = button("Take back <kbd>⌫</kbd>");
  const zoomIn = button("Zoom <kbd>+</kbd>");
  const zoomOut = button("<kbd>−</kbd>");
  tools.append(occludedButton, absentButton, backButton, zoomIn, zoomOut);
  const list = document.createElement("ol");
  list.className = "points";
  root.append(next, tools, list);
  const rows = names.map((name, index) => {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = `${index + 1}. ${name}`;
    const state = document.createElement("span");
    state.className = "state";
    li.append(label, state);
    li.addEventListener("click", () => { selected = index; render(); });
    list.append(li);
    return li;
  });

  const nextIndex = () => points.findIndex((p) => p === null);

  function toImage(event) {
    const matrix = overlay.getScreenCTM().inverse();
    const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix);
    return { x: Math.min(Math.max(point.x, 0), width), y: Math.min(Math.max(point.y, 0), height) };
  }

  function radius() {
    const shown = overlay.getBoundingClientRect().width || width;
    return (RADIUS_PX * width) / shown;
  }

  function render() {
    overlay.replaceChildren();
    overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
    overlay.setAttribute("preserveAspectRatio", "none");
    const r = radius();
    points.forEach((p, index) => {
      if (!p || p.v === ABSENT) return;
      const circle = document.createElementNS(SVG, "circle");
      circle.setAttribute("cx", p.x);
      circle.setAttribute("cy", p.y);
      circle.setAttribute("r", r);
      circle.setAttribute("stroke-width", r / 4);
      circle.dataset.index = String(index);
      circle.dataset.name = names[index];
      circle.classList.add("kp", p.predicted ? "predicted" : "placed");
      if (p.v === OCCLUDED) circle.classList.add("occluded");
      if (index === selected) circle.classList.add("selected");
      const title = document.createElementNS(SVG, "title");
      title.textContent = names[index];
      circle.append(title);
      overlay.append(circle);
      if (index === selected) {
        const text = document.createElementNS(SVG, "text");
        text.setAttribute("x", p.x + r * 1.4);
        text.setAttribute("y", p.y - r * 1.4);
        text.setAttribute("font-size", r * 2.2);
        text.setAttribute("stroke-width", r / 3);
        text.classList.add("kp-name");
        text.textContent = names[index];
        overlay.append(text);
      }
    });
    const upcoming = nextIndex();
    next.replaceChildren();
    if (upcoming >= 0) {
      next.append("Place ");
      const strong = document.createElement("strong");
      strong.id = "next-point-name";
      strong.textContent = names[upcoming];
      next.append(strong, ` (${upcoming + 1}/${names.length})`);
    } else {
      next.textContent = "All points placed: drag to correct, Enter to submit.";
    }
    rows.forEach((li, index) => {
      const p = points[index];
      li.classList.toggle("selected", index === selected);
      li.classList.toggle("next", index === upcoming);
      li.querySelector(".state").textContent = !p ? "" : p.v === ABSENT ? "absent"
        : p.v === OCCLUDED ? "occluded" : p.predicted ? "model" : "placed";
    });
  }

  function place(index, at, v = VISIBLE) {
    points[index] = { x: at.x, y: at.y, v, predicted: false };
    order = order.filter((i) => i !== index);
    order.push(index);
    selected = index;
  }

  overlay.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    const target = event.target.closest?.("circle.kp");
    if (target) {
      dragging = Number(target.dataset.index);
      selected = dragging;
      overlay.setPointerCapture(event.pointerId);
      render();
      return;
    }
    const index = nextIndex();
    if (index < 0) {
      setStatus("every point is placed: drag one to move it", false);
      return;
    }
    place(index, toImage(event));
    render();
  });
  overlay.addEventListener("pointermove", (event) => {
    if (dragging < 0) return;
    const at = toImage(event);
    const p = points[dragging];
    points[dragging] = { ...p, x: at.x, y: at.y, predicted: false };
    render();
  });
  const endDrag = () => { dragging = -1; };
  overlay.addEventListener("pointerup", endDrag);
  overlay.addEventListener("pointercancel", endDrag);

  function toggleOccluded() {
    const p = points[selected];
    if (!p || p.v === ABSENT) {
      setStatus("select a placed point first (click it)", true);
      return;
    }
    points[selected] = { ...p, v: p.v === OCCLUDED ? VISIBLE : OCCLUDED, predicted: false };
    render();
  }

  function markAbsent() {
    const index = nextIndex() >= 0 ? nextIndex() : selected;
    if (index < 0) return;
    place(index, { x: 0, y: 0 }, ABSENT);
    render();
  }

  function takeBack() {
    const index = order.pop();
    if (index === undefined) return;
    points[index] = null;
    selected = order.length ? order[order.length - 1] : -1;
    render();
  }

  occludedButton.addEventListener("click", toggleOccluded);
  absentButton.addEventListener("click", markAbsent);
  backButton.addEventListener("click", takeBack);
  let zoomHandler = () => {};
  zoomIn.addEventListener("click", () => zoomHandler(2));
  zoomOut.addEventListener("click", () => zoomHandler(0.5));

  return {
    activeOverlay: true,
    onZoom(handler) { zoomHandler = handler; },
    show(entry, { prefill }) {
      width = entry.meta.width;
      height = entry.meta.height;
      order = [];
      selected = -1;
      const guess = entry.prediction?.prediction?.points ?? {};
      if (prefill?.points) {
        points = prefill.points.map(([x, y, v]) => ({ x, y, v: v ?? VISIBLE, predicted: false }));
      } else {
        points = names.map((name) => {
          const at = guess[name];
          if (!at) return null;
          return { x: Math.min(Math.max(at[0], 0), width), y: Math.min(Math.max(at[1], 0), height),
                   v: VISIBLE, predicted: true };
        });
      }
      render();
    },
    value() {
      const missing = nextIndex();
      if (missing >= 0) return { error: `place ${names[missing]} (or mark it absent with X)` };
      return {
        label: {
          points: points.map((p) => (p.v === ABSENT ? [0, 0, ABSENT] : [round(p.x), round(p.y), p.v])),
        },
      };
    },
    onKey(event) {
      const key = event.key.toLowerCase();
      if (key === "o") toggleOccluded();
      else if (key === "x") markAbsent();
      else if (key === "backspace") takeBack();
      else if (key === "+" || key === "=") zoomHandler(2);
      else if (key === "-") zoomHandler(0.5);
      else return false;
      return true;
    },
    wantsLetters: () => false,
    resize: render,
  };
}
