// The annotator's queue: items from /suggest, leased to this annotator, one shown at a time
// with the next one already fetched and decoded. Leases are renewed while the page is open,
// a skipped item's lease is released at once, and all of them when the page closes.

const BATCH = 6;          // items asked for per refill
const LOW_WATER = 2;      // refill when fewer are waiting
const MAX_EXCLUDE = 500;  // skipped ids remembered (sent back as ?exclude=)

export class LabelQueue {
  constructor(api, projectId, annotator, { onBatch } = {}) {
    this.api = api;
    this.projectId = projectId;
    this.annotator = annotator;
    this.onBatch = onBatch ?? (() => {});
    this.waiting = [];       // entries not shown yet, in suggestion order
    this.current = null;     // the entry on screen
    this.skipped = [];       // ids skipped in this tab: not handed out again here
    this.refilling = null;   // the refill in flight (one at a time)
    this.firstCall = true;
    this.modelId = undefined;  // the model behind the queued items' guesses
    this.renewTimer = null;
    this.closed = false;
  }

  /** The next entry to show (its image loaded and decoded), or null when none is left. */
  async next() {
    if (this.waiting.length < LOW_WATER) await this.refill();
    const entry = this.waiting.shift() ?? null;
    this.current = entry;
    if (this.waiting.length < LOW_WATER) this.refill().catch(() => {});
    if (entry) await this.load(entry);
    if (this.waiting[0]) this.load(this.waiting[0]).catch(() => {});
    return entry;
  }

  /** Put an entry back in front (undo brings the last labelled item back on screen). */
  pushFront(entry) {
    if (this.current) this.waiting.unshift(this.current);
    this.current = entry;
  }

  refill() {
    if (!this.refilling) {
      this.refilling = this._refill().finally(() => { this.refilling = null; });
    }
    return this.refilling;
  }

  async _refill() {
    if (this.closed) return;
    const held = [this.current, ...this.waiting].filter(Boolean).map((e) => e.item_id);
    const answer = await this.api.get(`/projects/${this.projectId}/suggest`, {
      query: {
        k: BATCH, annotator: this.annotator, predictions: true,
        // The first call replaces whatever an earlier page left leased to this name; later
        // ones add to what this page holds, so the item on screen is never released.
        keep_leases: !this.firstCall,
        exclude: [...held, ...this.skipped],
      },
    });
    this.firstCall = false;
    if (this.modelId !== undefined && answer.model_id !== this.modelId) this.reset();
    this.modelId = answer.model_id;
    const known = new Set(held);
    for (const item of answer.items) {
      if (!known.has(item.item_id)) this.waiting.push({ ...item, ready: null, url: null, meta: null });
    }
    this.onBatch(answer);
    this._scheduleRenew(answer.lease_expires_at);
  }

  _scheduleRenew(expiresAt) {
    clearTimeout(this.renewTimer);
    const left = new Date(expiresAt).getTime() - Date.now();
    const delay = Math.max(2000, left / 3);
    this.renewTimer = setTimeout(() => this.renew().catch(() => {}), delay);
  }

  async renew() {
    if (this.closed) return;
    const answer = await this.api.post(`/projects/${this.projectId}/leases/renew`,
      { query: { annotator: this.annotator } });
    this._scheduleRenew(answer.lease_expires_at ?? new Date(Date.now() + 60_000).toISOString());
  }

  /** Fetch the item's row and image bytes (Bearer header, shown as a blob URL), decoded. */
  load(entry) {
    if (!entry.ready) {
      entry.ready = (async () => {
        const [meta, blob] = await Promise.all([
          this.api.get(`/items/${entry.item_id}`),
          this.api.get(`/items/${entry.item_id}/image`, { blob: true }),
        ]);
        entry.meta = meta;
        entry.url = URL.createObjectURL(blob);
        const probe = new Image();
        probe.src = entry.url;
        await probe.decode();
        return entry;
      })();
      entry.ready.catch(() => { entry.ready = null; });
    }
    return entry.ready;
  }

  /** Skip the item on screen: give its lease back for someone else. */
  async skip(entry) {
    this.skipped.push(entry.item_id);
    if (this.skipped.length > MAX_EXCLUDE) this.skipped.shift();
    await this.api.del(`/projects/${this.projectId}/leases`,
      { query: { annotator: this.annotator, item_id: entry.item_id } });
  }

  /** Drop what is queued (a new model: those items come back from /suggest with its guesses). */
  reset() {
    for (const entry of this.waiting) this.forget(entry);
    this.waiting = [];
  }

  forget(entry) {
    if (entry?.url) URL.revokeObjectURL(entry.url);
  }

  /** Release every lease (page closed, signed out); safe to call from pagehide. */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.renewTimer);
    this.api.beacon("DELETE", `/projects/${this.projectId}/leases`, { annotator: this.annotator });
  }
}
