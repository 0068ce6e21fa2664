// Autosave of the duplicate review: every choice is queued here and sent shortly after,
// several groups in one request. A failed send (offline, server gone) stays queued, is
// retried when the browser is back online or on the next choice, and leaving the page
// while anything is unsent asks first.
import { postJSON } from "./util.js";

const DELAY_MS = 250;
const RETRY_MS = 10000;

const marks = new Map(); // group key -> [{file_id, decision, group}]
const reviews = new Map(); // group key -> {reviewed, decision}
const listeners = new Set();
let timer = 0;
let sending = Promise.resolve();
let inFlight = 0;
let failed = null; // the last send's error, until a send succeeds

export function pending() { return marks.size + reviews.size + inFlight; }

export function lastError() { return failed; }

/** `listener()` after every send (or failure); removed when `signal` fires. */
export function onSaved(listener, signal) {
  listeners.add(listener);
  signal.addEventListener("abort", () => listeners.delete(listener));
}

export function queueMarks(key, list) { marks.set(key, list); schedule(DELAY_MS); }

export function queueReview(key, reviewed, decision = null) {
  reviews.set(key, { reviewed, decision });
  schedule(DELAY_MS);
}

/** Whether `key` has choices not yet stored by the server. */
export function isUnsaved(key) { return marks.has(key) || reviews.has(key); }

function schedule(delay) {
  clearTimeout(timer);
  timer = setTimeout(() => flush().catch(() => {}), delay);
}

/** Send everything queued; resolves once stored (rejects with the error otherwise). */
export function flush() {
  clearTimeout(timer);
  sending = sending.catch(() => {}).then(send);
  return sending;
}

async function send() {
  const markBatch = new Map(marks);
  const reviewBatch = new Map(reviews);
  marks.clear();
  reviews.clear();
  inFlight += 1;
  try {
    const list = [...markBatch.values()].flat();
    if (list.length) await postJSON("/api/marks", { marks: list });
    markBatch.clear();
    for (const [key, body] of reviewBatch) {
      await postJSON(`/api/review/groups/${encodeURIComponent(key)}`, body);
      reviewBatch.delete(key);
    }
    failed = null;
  } catch (error) {
    failed = error;
    for (const [key, list] of markBatch) if (!marks.has(key)) marks.set(key, list);
    for (const [key, body] of reviewBatch) if (!reviews.has(key)) reviews.set(key, body);
    schedule(RETRY_MS);
    throw error;
  } finally {
    inFlight -= 1;
    for (const listener of listeners) listener();
  }
}

window.addEventListener("online", () => { if (marks.size || reviews.size) flush().catch(() => {}); });
window.addEventListener("beforeunload", (event) => {
  if (!pending()) return;
  flush().catch(() => {});
  event.preventDefault();
  event.returnValue = ""; // the browser asks whether to leave with unsaved choices
});
