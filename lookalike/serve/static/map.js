// The 2-D map: points laid out so that nearby points look alike. Wheel or pinch zooms,
// dragging pans, the canvas redraws when its box changes size; hover shows a thumbnail,
// a click (without a drag) opens the image.
import { api, el, message, spinner } from "./util.js";

const HIT_RADIUS = 12; // px: how close a pointer must be to a point to pick it

const colour = (cluster) => `hsl(${(cluster * 137.5) % 360} 65% 50%)`;

/** Each cluster's colour and size, linking to its members. */
function legend(points) {
  const sizes = new Map();
  for (const point of points) sizes.set(point.cluster, (sizes.get(point.cluster) || 0) + 1);
  return el("ul", { class: "legend", "aria-label": "clusters" },
    [...sizes].sort((a, b) => a[0] - b[0]).map(([cluster, size]) => el("li", {},
      el("a", { href: `#gallery-cluster/${cluster}` },
        el("span", { class: "swatch", style: `background: ${colour(cluster)}` }),
        `cluster ${cluster} (${size})`))));
}

export async function mapView(ctx, tooltip) {
  ctx.title("Map");
  const progress = spinner("laying out the images in 2-D…", "map", ctx.cancel);
  ctx.root.append(el("h1", {}, "Map"), progress);
  const data = await api("/api/map", { signal: ctx.signal });
  progress.replaceWith(message(`${data.points.length} images (${data.method}); nearby points ` +
    "look alike. Scroll or pinch to zoom, drag to pan, double-click to reset; hover for a " +
    "thumbnail, click to open."));
  const canvas = el("canvas", { id: "map", role: "img",
    "aria-label": `map of ${data.points.length} images` });
  ctx.root.append(canvas, legend(data.points));
  const context = canvas.getContext("2d");
  const radius = data.points.length > 5000 ? 1.5 : 4;
  const pad = 12;
  let width = 0;
  let height = 0;
  let zoom = { scale: 1, x: 0, y: 0 }; // screen = layout * scale + offset

  const layout = (p) => [pad + p.x * (width - 2 * pad), pad + p.y * (height - 2 * pad)];
  const toScreen = ([x, y]) => [x * zoom.scale + zoom.x, y * zoom.scale + zoom.y];

  function draw() {
    const ratio = devicePixelRatio || 1;
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    for (const point of data.points) {
      const [x, y] = toScreen(layout(point));
      if (x < -radius || y < -radius || x > width + radius || y > height + radius) continue;
      context.fillStyle = colour(point.cluster);
      context.beginPath();
      context.arc(x, y, radius, 0, 2 * Math.PI);
      context.fill();
    }
  }

  function resize() {
    const ratio = devicePixelRatio || 1;
    width = canvas.clientWidth;
    height = Math.round(Math.min(width, innerHeight * 0.75));
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    canvas.style.height = `${height}px`;
    draw();
  }
  const observer = new ResizeObserver(resize);
  observer.observe(canvas);
  ctx.signal.addEventListener("abort", () => observer.disconnect());

  function local(event) {
    const box = canvas.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  }
  function nearest(event) {
    const [x, y] = local(event);
    let best = -1;
    let bestDistance = HIT_RADIUS ** 2;
    data.points.forEach((point, i) => {
      const [px, py] = toScreen(layout(point));
      const distance = (px - x) ** 2 + (py - y) ** 2;
      if (distance < bestDistance) { best = i; bestDistance = distance; }
    });
    return best;
  }
  function zoomAt([x, y], factor) {
    const scale = Math.min(64, Math.max(1, zoom.scale * factor));
    const applied = scale / zoom.scale;
    zoom = { scale, x: x - (x - zoom.x) * applied, y: y - (y - zoom.y) * applied };
    if (scale === 1) zoom = { scale: 1, x: 0, y: 0 };
    draw();
  }

  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    zoomAt(local(event), Math.exp(-event.deltaY / 300));
  }, { passive: false });
  canvas.addEventListener("dblclick", () => { zoom = { scale: 1, x: 0, y: 0 }; draw(); });

  const pointers = new Map(); // pointer id -> last position, for drag and pinch
  let moved = 0;
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, local(event));
    moved = 0;
  });
  canvas.addEventListener("pointerup", (event) => pointers.delete(event.pointerId));
  canvas.addEventListener("pointercancel", (event) => pointers.delete(event.pointerId));
  canvas.addEventListener("pointermove", (event) => {
    const last = pointers.get(event.pointerId);
    const now = local(event);
    if (last && pointers.size === 1) {
      moved += Math.abs(now[0] - last[0]) + Math.abs(now[1] - last[1]);
      zoom = { ...zoom, x: zoom.x + now[0] - last[0], y: zoom.y + now[1] - last[1] };
      draw();
    } else if (last && pointers.size === 2) {
      const [other] = [...pointers].filter(([id]) => id !== event.pointerId).map(([, p]) => p);
      const before = Math.hypot(last[0] - other[0], last[1] - other[1]);
      const after = Math.hypot(now[0] - other[0], now[1] - other[1]);
      moved += 10;
      if (before > 0) zoomAt([(now[0] + other[0]) / 2, (now[1] + other[1]) / 2], after / before);
    }
    if (last) pointers.set(event.pointerId, now);
    hover(event);
  });

  function hover(event) {
    const i = nearest(event);
    if (i < 0 || pointers.size) { tooltip.hidden = true; return; }
    const id = data.points[i].id;
    if (tooltip.dataset.id !== String(id)) {
      tooltip.replaceChildren(el("img", { src: `/thumb/${id}?size=160`, alt: `image ${id}` }));
      tooltip.dataset.id = String(id);
    }
    tooltip.style.left = `${event.pageX + 14}px`;
    tooltip.style.top = `${event.pageY + 14}px`;
    tooltip.hidden = false;
  }
  canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  canvas.addEventListener("click", (event) => {
    if (moved > 6) return; // the end of a drag, not a click
    const i = nearest(event);
    if (i >= 0) location.hash = `#image/${data.points[i].id}`;
  });
}
