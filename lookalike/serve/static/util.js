// Small helpers shared by the page's views: DOM building, the JSON API, formatting and
// the progress indicator. Everything user-supplied is inserted as text, never as markup.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An error the server answered with (status and its detail), not a network failure. */
class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** A stale answer: the view that asked has been left. */
export function isStale(error) { return error?.name === "AbortError"; }

/** `path`'s JSON. With `signal`, an answer arriving after the signal fired is dropped
 * (rejected as an AbortError), even one already read. */
export async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, typeof detail === "string" ? detail
      : JSON.stringify(detail));
  }
  const body = response.status === 204 ? null : await response.json();
  if (options.signal?.aborted) throw new DOMException("the view was left", "AbortError");
  return body;
}

export function postJSON(path, body, signal) {
  return api(path, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify(body), signal });
}

export function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function name(path) { return path.split("/").pop(); }

export function message(text, kind = "note") { return el("p", { class: kind }, text); }

/** Announce `text` to screen readers (the one polite live region of the page). */
export function announce(text) {
  const region = document.getElementById("status");
  if (region) region.textContent = text;
}

/** A spinner with stage text and the seconds elapsed. With `job` (the name of one of
 * the server's background analyses), the job's own stage, count and a Cancel button are
 * shown while it runs; Cancel stops the job, then calls `onCancel`. It stops once off
 * the page. */
export function spinner(text, job = null, onCancel = null) {
  const started = performance.now();
  const label = el("span", { class: "stage" }, text);
  const clock = el("span", { class: "elapsed" }, "0 s");
  const bar = el("progress", { hidden: true, "aria-label": "progress" });
  const cancel = el("button", { class: "secondary", hidden: true, onclick: () => {
    cancel.disabled = true;
    postJSON(`/api/jobs/${job}/cancel`, {}).catch(() => {}).finally(() => onCancel?.());
  } }, "Cancel");
  const node = el("div", { class: "progress", role: "status" },
    el("span", { class: "spin", "aria-hidden": "true" }), label, bar, clock, cancel);
  let polling = Boolean(job);
  const timer = setInterval(async () => {
    if (!node.isConnected && performance.now() - started > 1000) { clearInterval(timer); return; }
    clock.textContent = `${Math.round((performance.now() - started) / 1000)} s`;
    if (!polling) return;
    polling = false; // one poll at a time; none once the server has no job list
    try {
      const running = (await api("/api/jobs")).find((j) => j.name === job);
      const active = running && (running.state === "running" || running.state === "queued");
      bar.hidden = !active || !running.total;
      cancel.hidden = !active;
      if (active) {
        label.textContent = `${text} ${running.state === "queued" ? "(queued)"
          : `${running.stage}${running.total ? ` ${running.done} of ${running.total}` : ""}`}`;
        bar.max = running.total || 1;
        bar.value = running.done;
      }
      polling = true;
    } catch (_) { /* no background jobs on this server */ }
  }, 1000);
  return node;
}

export function tile(image, caption = null, extra = {}) {
  return el("a", { class: "tile", href: `#image/${image.id}`, title: image.path, ...extra },
    el("img", { src: `${image.thumb}?size=256`, alt: name(image.path), loading: "lazy" }),
    el("span", { class: "caption" }, caption ?? name(image.path)));
}

export function grid(images, caption) {
  return el("div", { class: "grid" }, images.map((image) => tile(image, caption?.(image))));
}

/** Remember `values` in the current history entry (restored when Back returns to it). */
export function remember(values) {
  history.replaceState({ ...(history.state || {}), ...values }, "");
}
