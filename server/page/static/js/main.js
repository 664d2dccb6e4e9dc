// The labelling page: sign in, then label what /suggest hands out, one large image at a
// time, with the model's guess prefilled. Everything goes through the public REST API.

import { createApi } from "./api.js";
import { createOwnerPanel, isOwner } from "./owner.js";
import { LabelQueue } from "./queue.js";
import { createClassificationTool } from "./tools/classification.js";
import { createKeypointsTool } from "./tools/keypoints.js";
import { createRegressionTool } from "./tools/regression.js";

const TOOLS = {
  classification: createClassificationTool,
  regression: createRegressionTool,
  keypoints: createKeypointsTool,
};
const HISTORY = 20;  // labelled items that Undo can reach
const SUBMIT_MARK = "xm-submit";
const SHOWN_MEASURE = "xm-submit-to-next-shown";
const STORE = window.sessionStorage;
const $ = (id) => document.getElementById(id);

let session = null;  // {api, project, queue, tool, current, history, busy, zoom}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function showSignIn(message) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-message").hidden = !message;
  $("signin-message").textContent = message ?? "";
  $("signin-annotator").value = STORE.getItem("xm.annotator") ?? "";
  $("signin-token").focus();
}

function endSession(message) {
  if (session) {
    session.queue.closed = true;
    clearTimeout(session.queue.renewTimer);
    session.owner?.close();
  }
  session = null;
  showOwner(false);
  $("owner-toggle").hidden = true;
  STORE.removeItem("xm.token");
  document.body.dataset.itemId = "";
  showSignIn(message);
}

function onUnauthorized(error) {
  if (session) endSession(`Signed out: ${error.message}. Sign in again with a valid token.`);
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("signin-token").value.trim();
  const annotator = $("signin-annotator").value.trim();
  if (!token || !annotator) return;
  $("signin-submit").disabled = true;
  try {
    await start(token, annotator);
  } finally {
    $("signin-submit").disabled = false;
  }
});

async function start(token, annotator) {
  const api = createApi(token, () => {});
  let projects;
  try {
    projects = await api.get("/projects");
  } catch (error) {
    showSignIn(error.status === 401 ? `That token was refused: ${error.message}.`
      : `Cannot reach the service: ${error.message}`);
    return;
  }
  if (projects.length !== 1) {
    showSignIn("Use a project token (owner or annotator), not the admin token.");
    return;
  }
  STORE.setItem("xm.token", token);
  STORE.setItem("xm.annotator", annotator);
  $("signin-token").value = "";
  const project = projects[0];
  const root = $("tool");
  const queue = new LabelQueue(createApi(token, (e) => onUnauthorized(e)), project.id, annotator,
    { onBatch: showBatchNotice });
  session = { api: queue.api, project, queue, current: null, history: [], busy: false, zoom: 1 };
  const make = TOOLS[project.task.kind];
  session.tool = make({ task: project.task, root, overlay: $("overlay"), submit, setStatus });
  session.tool.onZoom?.((factor) => zoom(factor));
  $("overlay").classList.toggle("active", Boolean(session.tool.activeOverlay));
  $("overlay").hidden = !session.tool.activeOverlay;
  $("project-name").textContent = project.name;
  $("task-kind").textContent = project.task.kind;
  $("annotator-name").textContent = annotator;
  $("signin").hidden = true;
  $("app").hidden = false;
  refreshCounts();
  isOwner(session.api, project.id).then((owner) => {
    if (!owner || !session) return;
    session.owner = createOwnerPanel({
      api: session.api, project, onModelChange: () => {
        if (!session) return;
        session.queue.reset();
        if (!session.current) showNext();
        else session.queue.refill().catch(() => {});  // new guesses, and the notice updated
      },
    });
    $("owner-toggle").hidden = false;
  }).catch(() => {});
  await showNext();
}

function showOwner(open) {
  $("owner").hidden = !open;
  document.querySelector(".workspace").hidden = open;
  $("owner-toggle").textContent = open ? "Back to labelling" : "Project";
}

$("owner-toggle").addEventListener("click", () => {
  if (!session?.owner) return;
  const open = $("owner").hidden;
  showOwner(open);
  if (open) {
    session.owner.open().catch((error) => { $("job-status").textContent = error.message; });
  } else {
    session.owner.close();
    if (!session.current) showNext();
    else layout();
  }
});

function showBatchNotice(answer) {
  const notice = $("notice");
  if (answer.cold_start) {
    notice.textContent = `Cold start: ${answer.note ?? "no trained model yet"}. Items come in a `
      + "random order until the first model is trained; its guesses will then be prefilled.";
    notice.hidden = false;
  } else {
    notice.hidden = true;
  }
}

async function refreshCounts() {
  if (!session) return;
  try {
    const stats = await session.api.get(`/projects/${session.project.id}/stats`);
    $("counts").textContent = `${stats.labelled} of ${stats.items} labelled`;
  } catch { /* counts are informative only */ }
}

function layout() {
  const entry = session?.current;
  if (!entry?.meta) return;
  const stage = $("stage");
  const { width, height } = entry.meta;
  const fit = Math.min((stage.clientWidth - 16) / width, (stage.clientHeight - 16) / height);
  const scale = Math.max(fit, 0.05) * session.zoom;
  const image = $("image");
  image.style.width = `${width * scale}px`;
  image.style.height = `${height * scale}px`;
  image.classList.toggle("pixelated", scale >= 3);
  session.tool.resize();
}

function zoom(factor) {
  if (!session) return;
  session.zoom = Math.min(Math.max(session.zoom * factor, 1), 16);
  layout();
}

function showGuess(entry) {
  const box = $("guess");
  const guess = entry.prediction;
  if (!guess) {
    box.hidden = true;
    return;
  }
  const p = guess.prediction;
  let text;
  if (guess.task === "classification") {
    text = `${p.class} (${Math.round((p.probabilities?.[p.class] ?? 0) * 100)}%)`;
  } else if (guess.task === "regression") {
    text = Object.entries(p.values).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
  } else {
    text = `${Object.keys(p.points ?? {}).length} points placed`;
  }
  box.replaceChildren();
  const line = document.createElement("div");
  const title = document.createElement("strong");
  title.textContent = "Model's guess";
  line.append(title, ` (v${guess.model_version}): ${text}`);
  const spread = document.createElement("div");
  spread.className = "small muted";
  spread.id = "disagreement";
  spread.textContent = `heads disagree: ${guess.disagreement.toPrecision(3)}`
    + (entry.score !== null && entry.score !== undefined ? ` · score ${entry.score.toPrecision(3)}` : "");
  box.append(line, spread);
  box.hidden = false;
}

function display(entry, prefill = null) {
  session.current = entry;
  closeFlag();
  session.zoom = 1;
  $("empty").hidden = true;
  $("canvas").hidden = false;
  $("image").src = entry.url;
  $("item-info").textContent = `item ${entry.item_id} · ${entry.meta.width}×${entry.meta.height}`
    + ` · ${entry.meta.original_name}`;
  layout();
  showGuess(entry);
  session.tool.show(entry, { prefill });
  document.body.dataset.itemId = String(entry.item_id);
  if (performance.getEntriesByName(SUBMIT_MARK).length) {
    // Submit to "next image on screen": measured once the frame that shows it is painted
    // (the callback of the frame, then the task after it). bench/labelling_page.py reads it.
    requestAnimationFrame(() => setTimeout(() => {
      performance.measure(SHOWN_MEASURE, SUBMIT_MARK);
      performance.clearMarks(SUBMIT_MARK);
    }));
  }
}

async function showNext() {
  if (!session) return;
  let entry;
  try {
    entry = await session.queue.next();
  } catch (error) {
    if (session) setStatus(`Could not load the next item: ${error.message}`, true);
    return;
  }
  if (!session) return;
  if (!entry) {
    session.current = null;
    $("canvas").hidden = true;
    $("empty").hidden = false;
    $("guess").hidden = true;
    document.body.dataset.itemId = "none";
    return;
  }
  display(entry);
}

function remember(record) {
  session.history.push(record);
  while (session.history.length > HISTORY) session.queue.forget(session.history.shift().entry);
  $("undo").disabled = false;
}

async function submit(label) {
  if (!session || session.busy || !session.current) return;
  const entry = session.current;
  session.busy = true;
  setStatus("saving…");
  performance.mark(SUBMIT_MARK);
  try {
    const answer = await session.api.put(`/items/${entry.item_id}/label`, label);
    remember({ entry, previous: entry.meta.label, label: answer.item.label });
    entry.meta = answer.item;
    setStatus(`saved item ${entry.item_id}`);
    await showNext();
    refreshCounts();
  } catch (error) {
    performance.clearMarks(SUBMIT_MARK);
    if (session) setStatus(`Not saved: ${error.message}`, true);
  } finally {
    if (session) session.busy = false;
  }
}

async function skip() {
  if (!session || session.busy || !session.current) return;
  const entry = session.current;
  session.busy = true;
  try {
    session.queue.skip(entry).catch(() => {});
    session.queue.forget(entry);
    setStatus(`skipped item ${entry.item_id}`);
    await showNext();
  } finally {
    if (session) session.busy = false;
  }
}

async function undo() {
  if (!session || session.busy) return;
  const record = session.history.pop();
  if (!record) return;
  session.busy = true;
  const { entry } = record;
  try {
    if (record.flagged) {
      entry.meta = await session.api.del(`/items/${entry.item_id}/unlabellable`);
    } else {
      const path = `/items/${entry.item_id}/label`;
      entry.meta = record.previous ? (await session.api.put(path, record.previous)).item
        : await session.api.del(path);
    }
    session.queue.pushFront(entry);
    display(entry, record.label ?? null);
    setStatus(record.flagged ? `item ${entry.item_id} is back: label it or skip it`
      : `undid the label of item ${entry.item_id}: label it again`);
    refreshCounts();
  } catch (error) {
    session?.history.push(record);
    if (session) setStatus(`Could not undo: ${error.message}`, true);
  } finally {
    if (session) {
      session.busy = false;
      $("undo").disabled = session.history.length === 0;
    }
  }
}

function openFlag() {
  if (!session?.current || session.busy) return;
  $("flag-form").hidden = false;
  $("flag-reason").value = "";
  $("flag-reason").focus();
}

function closeFlag() {
  $("flag-form").hidden = true;
  if (document.activeElement === $("flag-reason")) $("flag-reason").blur();
}

async function flagCurrent(reason) {
  if (!session?.current || session.busy) return;
  const entry = session.current;
  session.busy = true;
  closeFlag();
  try {
    entry.meta = await session.api.put(`/items/${entry.item_id}/unlabellable`, { reason });
    remember({ entry, flagged: true });
    setStatus(`item ${entry.item_id} flagged: it will not be suggested again`);
    await showNext();
  } catch (error) {
    if (session) setStatus(`Not flagged: ${error.message}`, true);
  } finally {
    if (session) session.busy = false;
  }
}

$("unlabellable").addEventListener("click", openFlag);
$("flag-reason").addEventListener("keydown", (event) => {
  event.stopPropagation();  // the labelling keys do not apply while typing the reason
  if (event.key === "Enter") {
    event.preventDefault();
    flagCurrent($("flag-reason").value);
  } else if (event.key === "Escape") {
    event.preventDefault();
    closeFlag();
  }
});

function submitFromTool() {
  if (!session?.current) return;
  const result = session.tool.value();
  if (result.error) setStatus(result.error, true);
  else submit(result.label);
}

$("submit").addEventListener("click", submitFromTool);
$("skip").addEventListener("click", skip);
$("undo").addEventListener("click", undo);
$("retry").addEventListener("click", () => showNext());
$("signout").addEventListener("click", () => {
  session?.queue.close();
  endSession("Signed out.");
});

document.addEventListener("keydown", (event) => {
  if (!session || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (!$("owner").hidden) return;  // the owner panel has no labelling keys
  if (event.key === "Enter") {
    event.preventDefault();
    submitFromTool();
    return;
  }
  if (session.tool.onKey(event)) {
    event.preventDefault();
    return;
  }
  if (session.tool.wantsLetters()) return;
  const key = event.key.toLowerCase();
  if (key === "s") {
    event.preventDefault();
    skip();
  } else if (key === "u") {
    event.preventDefault();
    undo();
  } else if (key === "c") {
    event.preventDefault();
    openFlag();
  }
});

window.addEventListener("resize", layout);
window.addEventListener("pagehide", () => session?.queue.close());
// Back from the back/forward cache: the leases were given back on pagehide, so start afresh.
window.addEventListener("pageshow", (event) => { if (event.persisted) window.location.reload(); });

const saved = STORE.getItem("xm.token");
if (saved) start(saved, STORE.getItem("xm.annotator") ?? "");
else showSignIn();
