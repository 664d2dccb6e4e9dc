// Owner tools on the labelling page: add images (drag and drop of files, folders or zips,
// with a progress bar and each file's outcome), start training and watch the job live
// (phase, step, loss, ETA, cancel), the project's counts, the learning curve and the active
// model's download. All through the public API; the service refuses them to annotators.

const FILES_PER_REQUEST = 16;
const BYTES_PER_REQUEST = 24 * 1024 * 1024;
const IMAGE = /\.(jpe?g|png|webp|bmp)$/i;
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const $ = (id) => document.getElementById(id);

/** True when the token may use owner actions (the token list is owner-only). */
export async function isOwner(api, projectId) {
  try {
    await api.get(`/projects/${projectId}/tokens`);
    return true;
  } catch (error) {
    if (error.status === 403) return false;
    throw error;
  }
}

/** Every file under the dropped entries, folders walked recursively. */
async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files];
  const files = [];
  async function walk(entry) {
    if (entry.isFile) {
      files.push(await new Promise((resolve, reject) => entry.file(resolve, reject)));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    }
  }
  for (const entry of entries) await walk(entry);
  return files;
}

function batches(files) {
  const out = [];
  let current = [];
  let bytes = 0;
  for (const file of files) {
    if (current.length && (current.length >= FILES_PER_REQUEST || bytes + file.size > BYTES_PER_REQUEST)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(file);
    bytes += file.size;
  }
  if (current.length) out.push(current);
  return out;
}

function seconds(value) {
  if (value === null || value === undefined) return "";
  return value >= 90 ? `${Math.round(value / 60)} min` : `${Math.round(value)} s`;
}

export function createOwnerPanel({ api, project, onModelChange }) {
  const rows = $("upload-files").tBodies[0];
  const progress = $("upload-progress");
  let activeModel = null;
  let watching = null;
  let curveUrl = null;

  function row(name, outcome, detail) {
    const tr = rows.insertRow();
    tr.className = outcome;
    tr.insertCell().textContent = name;
    tr.insertCell().textContent = outcome;
    tr.insertCell().textContent = detail ?? "";
  }

  async function sendBatch(files, onProgress) {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.webkitRelativePath || file.name);
    try {
      const answer = await api.upload(`/projects/${project.id}/items`, form, onProgress);
      for (const entry of answer.items) {
        row(entry.name, entry.created ? "created" : "duplicate", `item ${entry.item.id}`);
      }
      return answer.items.map((entry) => (entry.created ? "created" : "duplicate"));
    } catch (error) {
      if (error.status === 401 || error.status === 0) throw error;
      if (files.length === 1) {
        row(files[0].webkitRelativePath || files[0].name, "refused", error.message);
        return ["refused"];
      }
      // One bad file refuses its whole request: send them one by one to say which.
      const outcomes = [];
      for (const file of files) outcomes.push(...await sendBatch([file], null));
      return outcomes;
    }
  }

  async function sendZip(file, onProgress) {
    const form = new FormData();
    form.append("archive", file, file.name);
    try {
      const answer = await api.upload(`/projects/${project.id}/items/import`, form, onProgress);
      for (const entry of answer.items) {
        row(`${file.name}: ${entry.name}`, entry.created ? "created" : "duplicate", `item ${entry.item.id}`);
      }
      return answer.items.map((entry) => (entry.created ? "created" : "duplicate"));
    } catch (error) {
      if (error.status === 401 || error.status === 0) throw error;
      row(file.name, "refused", error.message);
      return ["refused"];
    }
  }

  async function upload(files) {
    rows.replaceChildren();
    const outcomes = [];
    const images = [];
    const zips = [];
    for (const file of files) {
      if (/\.zip$/i.test(file.name)) zips.push(file);
      else if (IMAGE.test(file.name) || file.type.startsWith("image/")) images.push(file);
      else if (!file.name.startsWith(".")) {
        row(file.webkitRelativePath || file.name, "refused", "not an image (JPEG, PNG, WebP, BMP) or a zip");
        outcomes.push("refused");
      }
    }
    const total = [...images, ...zips].reduce((sum, f) => sum + f.size, 0) || 1;
    let done = 0;
    progress.hidden = false;
    progress.value = 0;
    const track = (size) => (loaded, sent) => {
      progress.value = Math.min(1, (done + (loaded / (sent || 1)) * size) / total);
    };
    $("upload-summary").textContent = `uploading ${images.length + zips.length} files…`;
    try {
      for (const batch of batches(images)) {
        const size = batch.reduce((sum, f) => sum + f.size, 0);
        outcomes.push(...await sendBatch(batch, track(size)));
        done += size;
      }
      for (const zip of zips) {
        outcomes.push(...await sendZip(zip, track(zip.size)));
        done += zip.size;
      }
    } catch (error) {
      $("upload-summary").textContent = `Upload stopped: ${error.message}`;
      return;
    }
    progress.value = 1;
    const count = (what) => outcomes.filter((o) => o === what).length;
    $("upload-summary").textContent = `${count("created")} created, ${count("duplicate")} `
      + `already in the project, ${count("refused")} refused`;
    refresh();
  }

  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    upload(await droppedFiles(event.dataTransfer));
  });
  for (const input of [$("pick-files"), $("pick-folder")]) {
    input.addEventListener("change", () => {
      const files = [...input.files];
      input.value = "";
      upload(files);
    });
  }

  function showJob(job) {
    const status = $("job-status");
    const bar = $("job-progress");
    const metrics = job.metrics ?? {};
    const parts = [`job ${job.id}: ${job.status}`];
    if (job.phase && !FINAL.has(job.status)) parts.push(job.phase);
    if (job.progress_total) parts.push(`step ${job.progress_step} of ${job.progress_total}`);
    if (typeof metrics.loss === "number") parts.push(`loss ${metrics.loss.toFixed(4)}`);
    if (!FINAL.has(job.status) && metrics.eta_seconds) parts.push(`about ${seconds(metrics.eta_seconds)} left`);
    if (job.error) parts.push(job.error);
    status.textContent = parts.join(" · ");
    status.dataset.status = job.status;
    bar.hidden = FINAL.has(job.status) || !job.progress_total;
    bar.value = job.progress_total ? job.progress_step / job.progress_total : 0;
    $("cancel-job").hidden = FINAL.has(job.status);
    $("train").disabled = !FINAL.has(job.status);
  }

  async function watch(job) {
    clearTimeout(watching);
    showJob(job);
    if (FINAL.has(job.status)) {
      if (job.status === "succeeded") {
        await refresh();
        onModelChange();
      }
      return;
    }
    watching = setTimeout(async () => {
      try {
        watch(await api.get(`/jobs/${job.id}`));
      } catch (error) {
        $("job-status").textContent = `Cannot read job ${job.id}: ${error.message}`;
      }
    }, 1000);
  }

  $("train").addEventListener("click", async () => {
    $("train").disabled = true;
    try {
      watch(await api.post(`/projects/${project.id}/jobs`, { json: { kind: "train" } }));
    } catch (error) {
      $("job-status").textContent = `Training not started: ${error.message}`;
      $("train").disabled = false;
    }
  });
  $("cancel-job").addEventListener("click", async () => {
    const id = Number($("job-status").textContent.match(/^job (\d+)/)?.[1]);
    if (id) watch(await api.post(`/jobs/${id}/cancel`));
  });
  $("download-model").addEventListener("click", async () => {
    if (!activeModel) return;
    const blob = await api.get(`/models/${activeModel}/download`, { query: { format: "onnx" }, blob: true });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${project.name}-model-${activeModel}.onnx`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  });

  async function showFlagged() {
    const page = await api.get(`/projects/${project.id}/items`,
      { query: { status: "unlabellable", limit: 200 } });
    const body = $("flagged").tBodies[0];
    body.replaceChildren();
    for (const item of page.items) {
      const tr = body.insertRow();
      tr.dataset.itemId = String(item.id);
      tr.insertCell().textContent = item.original_name || `item ${item.id}`;
      tr.insertCell().textContent = item.unlabellable_reason ?? "no reason given";
      const back = document.createElement("button");
      back.type = "button";
      back.textContent = "Back to the queue";
      back.addEventListener("click", async () => {
        await api.del(`/items/${item.id}/unlabellable`);
        showFlagged();
      });
      tr.insertCell().append(back);
    }
    $("flagged-summary").textContent = page.items.length
      ? `${page.items.length}${page.next_cursor ? "+" : ""} flagged; they stay out of the queue.`
      : "None flagged.";
  }

  async function refresh() {
    showFlagged().catch(() => {});
    const stats = await api.get(`/projects/${project.id}/stats`);
    activeModel = stats.active_model_id;
    $("project-counts").textContent = `${stats.items} images, ${stats.labelled} labelled; `
      + (activeModel ? `active model ${activeModel}` : "no trained model yet");
    $("download-model").disabled = !activeModel;
    const curve = $("learning-curve");
    try {
      const blob = await api.get(`/projects/${project.id}/metrics.png`, { blob: true });
      if (curveUrl) URL.revokeObjectURL(curveUrl);
      curveUrl = URL.createObjectURL(blob);
      curve.src = curveUrl;
      curve.hidden = !activeModel;
    } catch {
      curve.hidden = true;
    }
  }

  return {
    async open() {
      await refresh();
      const jobs = await api.get(`/projects/${project.id}/jobs`, { query: { limit: 500 } });
      if (jobs.length) watch(jobs[jobs.length - 1]);
    },
    close() {
      clearTimeout(watching);
    },
  };
}
