// lookalike page: plain JS, no build step, no external requests.
// Views are chosen by the URL hash (#gallery, #image/12, #duplicates, ...).
"use strict";

const view = document.getElementById("view");
const tooltip = document.getElementById("tooltip");
let stats = null;
let scrollObserver = null;

function el(tag, attrs = {}, ...children) {
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

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.json();
}

function bytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function name(path) { return path.split("/").pop(); }

function tile(image, caption = null, extra = {}) {
  return el("a", { class: "tile", href: `#image/${image.id}`, title: image.path, ...extra },
    el("img", { src: `${image.thumb}?size=256`, alt: name(image.path), loading: "lazy" }),
    el("span", { class: "caption" }, caption ?? name(image.path)));
}

function message(text, kind = "note") { return el("p", { class: kind }, text); }

function showError(error) { view.append(message(`Error: ${error.message}`, "error")); }

function grid(images, caption) {
  return el("div", { class: "grid" }, images.map((image) => tile(image, caption?.(image))));
}

function hitGrid(hits) {
  return el("div", { class: "grid" }, hits.map((hit) =>
    tile(hit.image, `#${hit.rank} · ${hit.score.toFixed(3)}`, { "data-rank": hit.rank })));
}

// -- gallery with infinite scroll -----------------------------------------------------------
function gallery(params = {}, title = "Gallery") {
  const query = new URLSearchParams({ limit: "60", ...params });
  const container = el("div", { class: "grid", id: "gallery" });
  const sentinel = el("div", { class: "sentinel" }, "loading…");
  const sort = el("select", { "aria-label": "sort", onchange: () => {
    location.hash = `#gallery/${sort.value}`; } },
    ["id", "-id", "path", "-size", "size", "-resolution", "resolution"].map((s) =>
      el("option", { value: s, selected: (params.sort || "id") === s }, `sort: ${s}`)));
  view.append(el("div", { class: "bar" }, el("h1", {}, title), params.cluster || params.group
    ? null : sort), container, sentinel);
  let offset = 0;
  let total = Infinity;
  let busy = false;
  async function more() {
    if (busy || offset >= total) return;
    busy = true;
    try {
      query.set("offset", String(offset));
      const page = await api(`/api/images?${query}`);
      total = page.total;
      offset += page.items.length;
      container.append(...page.items.map((image) => tile(image)));
      sentinel.textContent = offset >= total ? `${total.toLocaleString()} images` : "loading…";
    } catch (error) { sentinel.textContent = `Error: ${error.message}`; total = 0; }
    busy = false;
    if (offset < total && sentinel.getBoundingClientRect().top < innerHeight + 600) more();
  }
  scrollObserver = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) more();
  }, { rootMargin: "600px" });
  scrollObserver.observe(sentinel);
  more();
}

// -- one image and its neighbours -----------------------------------------------------------
async function imageView(id) {
  const image = await api(`/api/images/${id}`);
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "path"), el("dd", {}, image.path),
    el("dt", {}, "size"), el("dd", {}, `${image.width ?? "?"} × ${image.height ?? "?"} px, ` +
      `${bytes(image.size)}, ${image.format ?? "?"}`),
    image.reason ? [el("dt", {}, "skipped"), el("dd", {}, image.reason)] : null);
  const k = el("input", { type: "number", min: 1, max: 200, value: 12, "aria-label": "k" });
  const results = el("div", { id: "neighbours" });
  async function load() {
    results.replaceChildren(message("searching…"));
    try {
      const found = await api(`/api/images/${id}/similar?k=${k.value}`);
      results.replaceChildren(found.hits.length ? hitGrid(found.hits) : message("no neighbours"));
    } catch (error) { results.replaceChildren(message(error.message, "error")); }
  }
  view.append(
    el("div", { class: "detail" },
      el("a", { href: image.url, target: "_blank", rel: "noopener" },
        el("img", { class: "large", src: `${image.thumb}?size=640`, alt: name(image.path) })),
      el("div", {}, el("h1", {}, name(image.path)), facts,
        el("p", {}, el("a", { href: image.url, target: "_blank", rel: "noopener" },
          "open original")))),
    el("div", { class: "bar" }, el("h2", {}, "Most similar"), k,
      image.status === "ok" ? el("button", { onclick: load, id: "search-from" },
        "Search from this image") : null),
    results);
  if (image.status === "ok") load();
  else results.append(message("This file is not embedded, so it has no neighbours."));
}

// -- search by a new image or by text -------------------------------------------------------
function searchView() {
  const results = el("div", { id: "results" });
  const preview = el("img", { class: "preview", alt: "query", hidden: true });
  async function run(request, label) {
    results.replaceChildren(message(`searching for ${label}…`));
    try {
      const found = await api("/api/search", request);
      results.replaceChildren(found.hits.length ? hitGrid(found.hits) : message("no results"));
    } catch (error) { results.replaceChildren(message(error.message, "error")); }
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
  view.append(el("h1", {}, "Search"), drop);
  if (stats?.text_search) {
    const text = el("input", { type: "search", placeholder: "describe an image…", id: "text" });
    view.append(el("form", { class: "bar", onsubmit: (event) => {
      event.preventDefault();
      if (text.value.trim()) {
        run({ method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ text: text.value, k: 24 }) }, `“${text.value}”`);
      }
    } }, text, el("button", { type: "submit" }, "Search text")));
  }
  view.append(preview, results);
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

// -- duplicates review ---------------------------------------------------------------------
async function duplicatesView() {
  view.append(el("div", { class: "bar" }, el("h1", {}, "Duplicates"),
    el("a", { href: "/api/marks.csv", download: "marks.csv" }, "export marks (CSV)")),
  message("Keeper preselected (most pixels, then largest file). Marks are only recorded: " +
    "no file is ever deleted or moved by this page."));
  const status = message("finding duplicates… (first time on a large collection: minutes)");
  view.append(status);
  const page = await api("/api/duplicates?limit=200");
  status.textContent = `${page.total} groups (candidate cosine ${page.threshold.toFixed(3)}, ` +
    `${page.verified ? "verified" : "not verified"})`;
  for (const group of page.groups) view.append(duplicateGroup(group));
}

function duplicateGroup(group) {
  const choices = new Map();
  const saved = el("span", { class: "saved" });
  const members = group.members.map((member) => {
    const image = member.image;
    const initial = member.mark ?? (member.keeper ? "keep" : "discard");
    choices.set(image.id, initial);
    const options = ["keep", "discard", "not-duplicate"].map((decision) =>
      el("label", {}, el("input", { type: "radio", name: `mark-${group.key}-${image.id}`,
        value: decision, checked: decision === initial,
        onchange: () => { choices.set(image.id, decision); saved.textContent = "unsaved"; } }),
      decision));
    return el("figure", { class: member.keeper ? "member keeper" : "member",
      "data-id": image.id },
      el("a", { href: `#image/${image.id}` },
        el("img", { src: `${image.thumb}?size=256`, alt: name(image.path), loading: "lazy" })),
      el("figcaption", {},
        el("div", { class: "path", title: image.path }, image.path),
        el("div", {}, `${image.width} × ${image.height} · ${bytes(image.size)}` +
          (member.keeper ? " · suggested keeper" : ` · ${member.score.toFixed(3)}`)),
        el("div", { class: "choices" }, options)));
  });
  async function save() {
    saved.textContent = "saving…";
    try {
      const marks = [...choices].map(([id, decision]) => ({ file_id: id, decision,
        group: group.key }));
      await api("/api/marks", { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ marks }) });
      saved.textContent = "saved";
    } catch (error) { saved.textContent = `not saved: ${error.message}`; }
  }
  return el("section", { class: "dup-group", "data-key": group.key },
    el("div", { class: "bar" }, el("h2", {}, `${group.kind} · ${group.members.length} files`),
      el("button", { onclick: save, class: "save" }, "Save marks"), saved),
    el("div", { class: "side-by-side" }, members));
}

// -- groups, clusters, outliers ------------------------------------------------------------
async function groupsView(given = "") {
  // no threshold: the server's default, calibrated for the collection's model
  const input = el("input", { type: "number", step: "0.01", min: "0.01", max: "1",
    value: given, placeholder: "calibrated", "aria-label": "threshold" });
  view.append(el("form", { class: "bar", onsubmit: (event) => {
    event.preventDefault(); location.hash = `#groups/${input.value}`; } },
  el("h1", {}, "Groups"), el("label", {}, "cosine ≥ ", input),
  el("button", { type: "submit" }, "Group")));
  const query = given ? `threshold=${encodeURIComponent(given)}&` : "";
  const page = await api(`/api/groups?${query}limit=200`);
  const threshold = page.threshold === null ? "" : String(page.threshold);
  if (!given) input.value = threshold;
  view.append(message(`${page.total} groups at cosine ≥ ${threshold}` +
    (page.calibrated ? " (calibrated for this collection's model)" : "")));
  for (const group of page.groups) {
    view.append(el("section", { class: "set" }, el("div", { class: "bar" },
      el("h2", {}, `group ${group.number}: ${group.size} images, mean cosine ` +
        group.mean_similarity.toFixed(3)),
      el("a", { href: `#gallery-group/${group.number}/${given}` }, "all members")),
    grid(group.members, (image) => image.id === group.medoid.id ? "medoid" : null)));
  }
}

async function clustersView() {
  view.append(el("h1", {}, "Clusters"), message("clustering…"));
  const result = await api("/api/clusters");
  view.lastChild.textContent = `${result.k} clusters (k chosen automatically)`;
  for (const cluster of result.clusters) {
    view.append(el("section", { class: "set" }, el("div", { class: "bar" },
      el("h2", {}, `cluster ${cluster.cluster}: ${cluster.size} images`),
      el("a", { href: `#gallery-cluster/${cluster.cluster}` }, "all members")),
    grid(cluster.members, (image) => image.id === cluster.medoid?.id ? "medoid" : null)));
  }
}

async function outliersView() {
  view.append(el("h1", {}, "Outliers"), message("scoring…"));
  const result = await api("/api/outliers?fraction=0.05");
  view.lastChild.textContent = `the ${result.items.length} least typical of ` +
    `${result.total} images (local outlier factor; ~1 is typical)`;
  view.append(el("div", { class: "grid" }, result.items.map((item) =>
    tile(item.image, `#${item.rank} · ${item.score.toFixed(2)}`))));
}

// -- the 2-D map ---------------------------------------------------------------------------
async function mapView() {
  view.append(el("h1", {}, "Map"), message("laying out…"));
  const data = await api("/api/map");
  view.lastChild.textContent = `${data.points.length} images (${data.method}); nearby points ` +
    "look alike. Hover for a thumbnail, click to open.";
  const canvas = el("canvas", { id: "map" });
  view.append(canvas);
  const ratio = devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = Math.min(width, innerHeight * 0.75);
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.height = `${height}px`;
  const context = canvas.getContext("2d");
  context.scale(ratio, ratio);
  const pad = 12;
  const xy = data.points.map((p) => [pad + p.x * (width - 2 * pad), pad + p.y * (height - 2 * pad)]);
  data.points.forEach((point, i) => {
    context.fillStyle = `hsl(${(point.cluster * 137.5) % 360} 65% 45%)`;
    context.beginPath();
    context.arc(xy[i][0], xy[i][1], data.points.length > 5000 ? 1.5 : 4, 0, 2 * Math.PI);
    context.fill();
  });
  function nearest(event) {
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left;
    const y = event.clientY - box.top;
    let best = -1;
    let bestDistance = 144;
    xy.forEach(([px, py], i) => {
      const distance = (px - x) ** 2 + (py - y) ** 2;
      if (distance < bestDistance) { best = i; bestDistance = distance; }
    });
    return best;
  }
  canvas.addEventListener("mousemove", (event) => {
    const i = nearest(event);
    if (i < 0) { tooltip.hidden = true; return; }
    const id = data.points[i].id;
    if (tooltip.dataset.id !== String(id)) {
      tooltip.replaceChildren(el("img", { src: `/thumb/${id}?size=160`, alt: `image ${id}` }));
      tooltip.dataset.id = String(id);
    }
    tooltip.style.left = `${event.pageX + 14}px`;
    tooltip.style.top = `${event.pageY + 14}px`;
    tooltip.hidden = false;
  });
  canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  canvas.addEventListener("click", (event) => {
    const i = nearest(event);
    if (i >= 0) location.hash = `#image/${data.points[i].id}`;
  });
}

// -- routing -------------------------------------------------------------------------------
async function route() {
  scrollObserver?.disconnect();
  tooltip.hidden = true;
  view.replaceChildren();
  const [name = "gallery", ...args] = location.hash.slice(1).split("/");
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", name.startsWith(link.dataset.view));
  }
  try {
    if (name === "image") await imageView(Number(args[0]));
    else if (name === "search") searchView();
    else if (name === "duplicates") await duplicatesView();
    else if (name === "groups") await groupsView(args[0] || "");
    else if (name === "clusters") await clustersView();
    else if (name === "outliers") await outliersView();
    else if (name === "map") await mapView();
    else if (name === "gallery-cluster") gallery({ cluster: args[0] }, `Cluster ${args[0]}`);
    else if (name === "gallery-group") {
      gallery(args[1] ? { group: args[0], threshold: args[1] } : { group: args[0] },
        `Group ${args[0]}`);
    } else gallery(args[0] ? { sort: args[0] } : {});
  } catch (error) { showError(error); }
  window.scrollTo(0, 0);
}

window.addEventListener("hashchange", route);
api("/api/stats").then((s) => { stats = s; }).catch(() => {}).finally(route);
