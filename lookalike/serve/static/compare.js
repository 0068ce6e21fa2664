// Two images side by side at 100 %, zoom and pan shared by both; a flicker mode that shows
// them in turn in one place (differences jump out); the facts of each beside them.
import { api, bytes, el, name } from "./util.js";

const FACTS = [ // [label, how to read it off an image], shown where the server has it
  ["file", (i) => i.path],
  ["dimensions", (i) => (i.width ? `${i.width} × ${i.height} px` : null)],
  ["size", (i) => `${bytes(i.size)} (${i.size.toLocaleString()} bytes)`],
  ["format", (i) => i.format],
  ["taken", (i) => i.taken ?? i.captured ?? i.date ?? i.exif?.date ?? null],
  ["modified", (i) => (i.mtime ? new Date(i.mtime * 1000).toLocaleString() : null)],
  ["camera", (i) => i.camera ?? i.exif?.camera ?? null],
  ["JPEG quality", (i) => i.quality ?? null],
];

export async function compareView(ctx, a, b, key) {
  ctx.title("Compare");
  const [left, right] = await Promise.all([a, b].map((id) =>
    api(`/api/images/${id}`, { signal: ctx.signal })));
  let zoom = { scale: 1, x: 0, y: 0 }; // shared by both panes: image px -> pane px
  const panes = [left, right].map((image, i) => {
    const img = el("img", { src: image.url, alt: name(image.path), draggable: "false",
      class: "at-zoom" });
    const pane = el("div", { class: "pane", "data-side": i ? "right" : "left" }, img,
      el("span", { class: "pane-label" }, `${i ? "B" : "A"}: ${name(image.path)}`));
    return { image, img, pane };
  });
  const level = el("output", { id: "zoom-level" }, "100 %");

  function apply() {
    for (const { img } of panes) {
      img.style.transform = `translate(${zoom.x}px, ${zoom.y}px) scale(${zoom.scale})`;
    }
    level.textContent = `${Math.round(zoom.scale * 100)} %`;
  }
  function setScale(scale, [cx, cy] = centre()) {
    const applied = scale / zoom.scale;
    zoom = { scale, x: cx - (cx - zoom.x) * applied, y: cy - (cy - zoom.y) * applied };
    apply();
  }
  function centre() {
    const box = panes[0].pane.getBoundingClientRect();
    return [box.width / 2, box.height / 2];
  }
  function fit() {
    const box = panes[0].pane.getBoundingClientRect();
    const widest = Math.max(...panes.map((p) => p.image.width || 1));
    const tallest = Math.max(...panes.map((p) => p.image.height || 1));
    const scale = Math.min(1, box.width / widest, box.height / tallest);
    zoom = { scale, x: (box.width - widest * scale) / 2, y: (box.height - tallest * scale) / 2 };
    apply();
  }
  function actual() { // 100 %: one image pixel per screen pixel, centred
    const box = panes[0].pane.getBoundingClientRect();
    const width = panes[0].image.width || box.width;
    const height = panes[0].image.height || box.height;
    zoom = { scale: 1, x: (box.width - width) / 2, y: (box.height - height) / 2 };
    apply();
  }

  for (const { pane } of panes) {
    pane.addEventListener("wheel", (event) => {
      event.preventDefault();
      const box = pane.getBoundingClientRect();
      setScale(Math.min(16, Math.max(0.05, zoom.scale * Math.exp(-event.deltaY / 300))),
        [event.clientX - box.left, event.clientY - box.top]);
    }, { passive: false });
    let last = null;
    pane.addEventListener("pointerdown", (event) => {
      pane.setPointerCapture(event.pointerId);
      last = [event.clientX, event.clientY];
    });
    pane.addEventListener("pointermove", (event) => {
      if (!last) return;
      zoom = { ...zoom, x: zoom.x + event.clientX - last[0], y: zoom.y + event.clientY - last[1] };
      last = [event.clientX, event.clientY];
      apply();
    });
    pane.addEventListener("pointerup", () => { last = null; });
    pane.addEventListener("pointercancel", () => { last = null; });
  }

  // flicker: both images stacked in the left pane, shown in turn
  let flickerTimer = 0;
  const flicker = el("button", { id: "flicker", class: "secondary", "aria-pressed": "false",
    onclick: () => setFlicker(!flickerTimer) }, "Flicker");
  const stage = el("div", { class: "compare" }, panes.map((p) => p.pane));
  function setFlicker(on) {
    clearInterval(flickerTimer);
    flickerTimer = 0;
    flicker.setAttribute("aria-pressed", String(on));
    stage.classList.toggle("flickering", on);
    const [first, second] = panes;
    if (on) {
      first.pane.append(second.img);
      let showing = 0;
      flickerTimer = setInterval(() => {
        showing = 1 - showing;
        first.img.hidden = showing === 1;
        second.img.hidden = showing === 0;
        first.pane.querySelector(".pane-label").textContent = showing ? "B" : "A";
      }, 600);
      second.img.hidden = true;
    } else {
      second.pane.prepend(second.img);
      first.img.hidden = false;
      second.img.hidden = false;
      first.pane.querySelector(".pane-label").textContent = `A: ${name(first.image.path)}`;
    }
  }
  ctx.signal.addEventListener("abort", () => clearInterval(flickerTimer));

  const rows = FACTS.map(([label, read]) => {
    const values = [left, right].map(read);
    if (values.every((v) => v === null || v === undefined)) return null;
    const differ = values[0] !== values[1];
    return el("tr", { class: differ ? "differs" : null }, el("th", { scope: "row" }, label),
      values.map((v) => el("td", {}, v ?? "—")));
  });
  const facts = el("table", { class: "facts-table", id: "compare-facts" },
    el("thead", {}, el("tr", {}, el("td", {}), el("th", { scope: "col" }, "A"),
      el("th", { scope: "col" }, "B"))),
    el("tbody", {}, rows));

  ctx.root.append(
    el("div", { class: "bar" }, el("h1", {}, "Compare"),
      key ? el("a", { href: "#duplicates", onclick: (event) => {
        event.preventDefault();
        history.back();
      } }, "back to the review") : null),
    el("div", { class: "bar", role: "toolbar", "aria-label": "zoom" },
      el("button", { class: "secondary", id: "zoom-fit", onclick: fit }, "Fit"),
      el("button", { class: "secondary", id: "zoom-100", onclick: actual }, "100 %"),
      el("button", { class: "secondary", "aria-label": "zoom out",
        onclick: () => setScale(Math.max(0.05, zoom.scale / 1.5)) }, "−"),
      el("button", { class: "secondary", "aria-label": "zoom in",
        onclick: () => setScale(Math.min(16, zoom.scale * 1.5)) }, "+"),
      level, flicker,
      el("span", { class: "note" }, "Drag to pan, scroll to zoom: both sides move together.")),
    stage, facts);
  actual();
  document.addEventListener("keydown", (event) => {
    if (event.key === "f" && !event.target.closest?.("input, textarea")) setFlicker(!flickerTimer);
  }, { signal: ctx.signal });
}
