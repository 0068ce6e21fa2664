// lookalike page: plain JS modules, no build step, no external requests.
// Views are chosen by the URL hash (#gallery, #image/12, #duplicates/40, ...). Each view
// renders into its own element with its own AbortSignal: leaving a view cancels its
// requests and drops answers still on their way, so a slow view never pastes into the next.
import { compareView } from "./compare.js";
import { mapView } from "./map.js";
import { reviewView } from "./review.js";
import {
  api, el, bytes, grid, isStale, message, name, remember, spinner, tile,
} from "./util.js";

const view = document.getElementById("view");
const tooltip = document.getElementById("tooltip");
const siteTitle = document.title;
let stats = null;
let current = null; // the view on screen: { controller, saving }

history.scrollRestoration = "manual";

function hitGrid(hits) {
  return el("div", { class: "grid" }, hits.map((hit) =>
    tile(hit.image, `#${hit.rank} · ${hit.score.toFixed(3)}`, { "data-rank": hit.rank })));
}

// -- gallery with infinite scroll -----------------------------------------------------------
async function gallery(ctx, params = {}, title = "Gallery") {
  ctx.title(title);
  const query = new URLSearchParams(params);
  const container = el("div", { class: "grid", id: "gallery" });
  const sentinel = el("div", { class: "sentinel" }, "loading…");
  const sort = el("select", { id: "sort", onchange: () => {
    location.hash = `#gallery/${sort.value}`; } },
    ["id", "-id", "path", "-size", "size", "-resolution", "resolution"].map((s) =>
      el("option", { value: s, selected: (params.sort || "id") === s }, s)));
  const sorter = params.cluster || params.group ? null
    : el("label", { class: "inline" }, "sort by ", sort);
  ctx.root.append(el("div", { class: "bar" }, el("h1", {}, title), sorter), container, sentinel);
  let offset = 0;
  let total = Infinity;
  let busy = false;
  // Back to a gallery loads as many images as were shown, so its scroll place exists
  let batch = Math.min(500, Math.max(60, ctx.saved.loaded || 0));
  async function more() {
    if (busy || offset >= total || ctx.signal.aborted) return;
    busy = true;
    try {
      query.set("offset", String(offset));
      query.set("limit", String(batch));
      batch = 60;
      const page = await api(`/api/images?${query}`, { signal: ctx.signal });
      total = page.total;
      offset += page.items.length;
      container.append(...page.items.map((image) => tile(image)));
      sentinel.textContent = offset >= total ? `${total.toLocaleString()} images` : "loading…";
      remember({ loaded: offset });
    } catch (error) {
      if (isStale(error)) return;
      sentinel.textContent = `Error: ${error.message}`;
      total = 0;
    } finally { busy = false; }
    if (offset < total && sentinel.getBoundingClientRect().top < innerHeight + 600) more();
  }
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) more();
  }, { rootMargin: "600px" });
  observer.observe(sentinel);
  ctx.signal.addEventListener("abort", () => observer.disconnect());
  await more();
}

// -- one image and its neighbours -----------------------------------------------------------
async function imageView(ctx, id) {
  const image = await api(`/api/images/${id}`, { signal: ctx.signal });
  ctx.title(name(image.path));
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "path"), el("dd", {}, image.path),
    el("dt", {}, "size"), el("dd", {}, `${image.width ?? "?"} × ${image.height ?? "?"} px, ` +
      `${bytes(image.size)}, ${image.format ?? "?"}`),
    image.reason ? [el("dt", {}, "skipped"), el("dd", {}, image.reason)] : null);
  const k = el("input", { type: "number", min: 1, max: 200, value: 12, id: "k" });
  const results = el("div", { id: "neighbours" });
  async function load() {
    results.replaceChildren(spinner("searching…"));
    try {
      const found = await api(`/api/images/${id}/similar?k=${k.value}`, { signal: ctx.signal });
      results.replaceChildren(found.hits.length ? hitGrid(found.hits) : message("no neighbours"));
    } catch (error) {
      if (!isStale(error)) results.replaceChildren(message(error.message, "error"));
    }
  }
  ctx.root.append(
    el("div", { class: "detail" },
      el("a", { href: image.url, target: "_blank", rel: "noopener" },
        el("img", { class: "large", src: `${image.thumb}?size=640`, alt: name(image.path) })),
      el("div", {}, el("h1", {}, name(image.path)), facts,
        el("p", {}, el("a", { href: image.url, target: "_blank", rel: "noopener" },
          "open original")))),
    el("div", { class: "bar" }, el("h2", {}, "Most similar"),
      el("label", { class: "inline", for: "k" }, "how many"), k,
      image.status === "ok" ? el("button", { onclick: load, id: "search-from" },
        "Search from this image") : null),
    results);
  if (image.status === "ok") await load();
  else results.append(message("This file is not embedded, so it has no neighbours."));
}

// -- search by a new image or by text -------------------------------------------------------
function searchView(ctx) {
  ctx.title("Search");
  const results = el("div", { id: "results" });
  const preview = el("img", { class: "preview", alt: "query", hidden: true });
  function show(label, hits) {
    results.replaceChildren(message(`results for ${label}`),
      hits.length ? hitGrid(hits) : message("no results"));
  }
  async function run(request, label) {
    results.replaceChildren(spinner(`searching for ${label}…`));
    try {
      const found = await api("/api/search", { ...request, signal: ctx.signal });
      show(label, found.hits);
      remember({ search: { label, hits: found.hits } }); // Back from a hit shows them again
    } catch (error) {
      if (!isStale(error)) results.replaceChildren(message(error.message, "error"));
    }
  }
  function searchFile(file) {
    if (!file) return;
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    const form = new FormData();
    form.append("file", file);
    form.append("k", "24");
    run({ method: "POST", body: form }, file.name || "pasted image");
  }
  const input = el("input", { type: "file", accept: "image/*", id: "file-input",
    onchange: () => searchFile(input.files[0]) });
  const drop = el("label", { class: "drop", for: "file-input" },
    "Drop an image here, paste one (Ctrl+V), or click to choose a file", input);
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    searchFile(event.dataTransfer.files[0]);
  });
  const textForm = el("div");
  ctx.root.append(el("h1", {}, "Search"), drop, textForm);
  statsReady.then(() => {
    if (!stats?.text_search || ctx.signal.aborted) return;
    const text = el("input", { type: "search", placeholder: "describe an image…", id: "text" });
    textForm.replaceWith(el("form", { class: "bar", onsubmit: (event) => {
      event.preventDefault();
      if (text.value.trim()) {
        run({ method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ text: text.value, k: 24 }) }, `“${text.value}”`);
      }
    } }, el("label", { for: "text", class: "inline" }, "text"), text,
    el("button", { type: "submit" }, "Search text")));
  });
  ctx.root.append(preview, results);
  if (ctx.saved.search) show(ctx.saved.search.label, ctx.saved.search.hits);
}

document.addEventListener("paste", (event) => {
  const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
  if (!file) return;
  if (!location.hash.startsWith("#search")) location.hash = "#search";
  setTimeout(() => {
    const input = document.getElementById("file-input");
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    input.dispatchEvent(new Event("change"));
  }, 50);
});

// -- groups, clusters, outliers ------------------------------------------------------------
async function groupsView(ctx, given = "") {
  ctx.title("Groups");
  // no threshold: the server's default, calibrated for the collection's model
  const input = el("input", { type: "number", step: "0.01", min: "0.01", max: "1",
    value: given, placeholder: "calibrated", id: "threshold" });
  const progress = spinner("grouping…");
  ctx.root.append(el("form", { class: "bar", onsubmit: (event) => {
    event.preventDefault(); location.hash = `#groups/${input.value}`; } },
  el("h1", {}, "Groups"), el("label", { for: "threshold", class: "inline" }, "cosine ≥"), input,
  el("button", { type: "submit" }, "Group")), progress);
  const query = given ? `threshold=${encodeURIComponent(given)}&` : "";
  const page = await api(`/api/groups?${query}limit=200`, { signal: ctx.signal });
  const threshold = page.threshold === null ? "" : String(page.threshold);
  if (!given) input.value = threshold;
  progress.replaceWith(message(`${page.total} groups at cosine ≥ ${threshold}` +
    (page.calibrated ? " (calibrated for this collection's model)" : "") +
    (page.total > page.groups.length ? `; the largest ${page.groups.length} shown` : "")));
  for (const group of page.groups) {
    ctx.root.append(el("section", { class: "set" }, el("div", { class: "bar" },
      el("h2", {}, `group ${group.number}: ${group.size} images, mean cosine ` +
        group.mean_similarity.toFixed(3)),
      el("a", { href: `#gallery-group/${group.number}/${given}` }, "all members")),
    grid(group.members, (image) => image.id === group.medoid.id ? "medoid" : null)));
  }
}

async function clustersView(ctx) {
  ctx.title("Clusters");
  const progress = spinner("clustering…", "clusters", ctx.cancel);
  ctx.root.append(el("h1", {}, "Clusters"), progress);
  const result = await api("/api/clusters", { signal: ctx.signal });
  progress.replaceWith(message(`${result.k} clusters (k chosen automatically)`));
  for (const cluster of result.clusters) {
    ctx.root.append(el("section", { class: "set" }, el("div", { class: "bar" },
      el("h2", {}, `cluster ${cluster.cluster}: ${cluster.size} images`),
      el("a", { href: `#gallery-cluster/${cluster.cluster}` }, "all members")),
    grid(cluster.members, (image) => image.id === cluster.medoid?.id ? "medoid" : null)));
  }
}

async function outliersView(ctx) {
  ctx.title("Outliers");
  const progress = spinner("scoring how typical each image is…");
  ctx.root.append(el("h1", {}, "Outliers"), progress);
  const result = await api("/api/outliers?fraction=0.05", { signal: ctx.signal });
  progress.replaceWith(message(`the ${result.items.length} least typical of ` +
    `${result.total} images (local outlier factor; ~1 is typical)`));
  ctx.root.append(el("div", { class: "grid", id: "outliers" }, result.items.map((item) =>
    tile(item.image, `#${item.rank} · ${item.score.toFixed(2)}`))));
}

// -- routing -------------------------------------------------------------------------------
const ROUTES = {
  image: (ctx, id) => imageView(ctx, Number(id)),
  search: (ctx) => searchView(ctx),
  duplicates: (ctx, position) => reviewView(ctx, Number(position) || 0),
  compare: (ctx, a, b, key) => compareView(ctx, Number(a), Number(b), key),
  groups: (ctx, threshold) => groupsView(ctx, threshold || ""),
  clusters: (ctx) => clustersView(ctx),
  outliers: (ctx) => outliersView(ctx),
  map: (ctx) => mapView(ctx, tooltip),
  "gallery-cluster": (ctx, n) => gallery(ctx, { cluster: n }, `Cluster ${n}`),
  "gallery-group": (ctx, n, threshold) => gallery(ctx,
    threshold ? { group: n, threshold } : { group: n }, `Group ${n}`),
  gallery: (ctx, sort) => gallery(ctx, sort ? { sort } : {}),
};

async function route() {
  current?.controller.abort();
  const controller = new AbortController();
  const saved = { ...(history.state || {}) }; // read before this view's own updates
  const root = el("div", { class: "view" });
  let cancelled = false;
  const ctx = {
    root, saved, signal: controller.signal,
    title: (text) => { document.title = `${text} · ${siteTitle}`; },
    cancel: () => { cancelled = true; controller.abort(); }, // the user stopped it
  };
  current = { controller, saving: false };
  tooltip.hidden = true;
  view.replaceChildren(root);
  const [viewName = "gallery", ...args] = location.hash.slice(1).split("/").map(decodeURIComponent);
  const known = viewName in ROUTES ? viewName : "gallery";
  for (const link of document.querySelectorAll("nav a")) {
    const match = known === link.dataset.view || (known === "compare"
      && link.dataset.view === "duplicates") || known.startsWith(`${link.dataset.view}-`);
    link.classList.toggle("active", match);
    if (match) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    await ROUTES[known](ctx, ...(viewName in ROUTES ? args : []));
  } catch (error) {
    if (cancelled) {
      root.replaceChildren(message("Stopped."), el("button", { onclick: route }, "Start again"));
      return;
    }
    if (isStale(error)) return;
    root.append(message(`Error: ${error.message}`, "error"));
  }
  if (controller.signal.aborted) return;
  window.scrollTo(0, saved.scrollY || 0);
  current.saving = true; // from here on, scrolling is this entry's place
}

let scrollTimer = 0;
window.addEventListener("scroll", () => {
  clearTimeout(scrollTimer);
  const entry = current;
  scrollTimer = setTimeout(() => {
    if (entry === current && entry?.saving) remember({ scrollY: Math.round(scrollY) });
  }, 150);
}, { passive: true });
window.addEventListener("hashchange", () => { clearTimeout(scrollTimer); route(); });
// the first view does not wait for the stats (only Search's text box needs them)
const statsReady = api("/api/stats").then((s) => { stats = s; }).catch(() => {});
route();
