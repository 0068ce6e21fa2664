// The duplicate review queue: every group, a page at a time, one current group driven by
// the keyboard or by touch. Choices save themselves (saver.js); "Move discarded copies to
// quarantine" shows the plan, moves after a confirmation and can be undone.
import * as saver from "./saver.js";
import {
  announce, api, bytes, el, isStale, message, name, postJSON, spinner,
} from "./util.js";

const PAGE = 50; // groups per page
const TIERS = { exact: "exact copy", edited: "edited copy", similar: "similar shot" };
const KEYS_HELP = "Keys: j / k or ↓ / ↑ next and previous group, n next unreviewed, " +
  "1–9 keep that file and " +
  "discard the others, h / l choose a file, d keep or discard it, r reviewed and next, " +
  "c compare.";
// groups changed in this page's session: their choices win over the server's (unsent ones)
const local = new Map(); // key -> { choices: Map(id -> decision), reviewed }

/** How a member starts out: its saved mark, else the suggestion. A similar shot is
 * never suggested for discarding. */
function initialChoice(group, member) {
  if (member.mark) return member.mark;
  if (member.keeper) return "keep";
  return tierOf(group, member) === "similar" ? "keep" : "discard";
}

function tierOf(group, member = null) {
  return member?.tier ?? member?.evidence?.tier ?? group.tier ?? null;
}

function evidenceText(evidence) {
  if (evidence === null || evidence === undefined) return "";
  if (typeof evidence !== "object") return String(evidence);
  if (Array.isArray(evidence)) return evidence.map(evidenceText).join("; ");
  return Object.entries(evidence).filter(([key]) => key !== "tier").map(([key, value]) =>
    `${key.replaceAll("_", " ")} ${typeof value === "number" && !Number.isInteger(value)
      ? value.toFixed(3) : evidenceText(value)}`).join(", ");
}

function tierBadge(tier) {
  return tier ? el("span", { class: `badge tier tier-${tier}` }, TIERS[tier] ?? tier) : null;
}

export async function reviewView(ctx, position) {
  ctx.title("Duplicates");
  const progressText = el("span", { id: "review-progress" });
  const undo = el("button", { id: "undo", class: "secondary", hidden: true, onclick: undoMove },
    "Undo the last move");
  const toolbar = el("div", { class: "bar review-bar" },
    el("h1", {}, "Duplicates"), progressText,
    el("button", { id: "accept", class: "secondary", onclick: acceptSuggestions },
      "Accept suggestions for exact and edited copies"),
    el("button", { id: "apply", onclick: planMove }, "Move discarded copies to quarantine…"),
    undo,
    el("a", { href: "/api/marks.csv", download: "marks.csv" }, "export marks (CSV)"));
  const notice = el("div", { id: "review-notice", role: "status" });
  const pager = el("nav", { class: "bar pager", "aria-label": "pages of groups" });
  const list = el("div", { id: "review-list" });
  ctx.root.append(toolbar, message("Kept files are framed green, discarded ones dotted " +
    "red; each choice is saved as you make it. Nothing is deleted: discarded copies move " +
    "to a quarantine folder only when you say so, and the move can be undone."),
  message(KEYS_HELP, "note keys"),
  notice, pager, list);

  let total = 0;
  let offset = -1; // first group of the page shown
  let groups = []; // the page's groups, each { data, choices, reviewed, cursor, card, ... }
  let index = position; // the current group, 0-based over all groups
  let loading = null; // AbortController of the page request on its way
  let status = null; // GET /api/review/status, where the server has it
  let statusTimer = 0;
  let placeTimer = 0;
  let dialog = null;

  function say(text, kind = "note") {
    notice.replaceChildren(text ? message(text, kind) : "");
  }

  // -- loading a page of groups --------------------------------------------------------------
  async function loadPage(start, first = false) {
    loading?.abort();
    const controller = new AbortController();
    loading = controller;
    const abort = () => controller.abort();
    ctx.signal.addEventListener("abort", abort);
    const progress = first ? spinner("finding duplicates (on a large collection the first " +
      "run takes minutes)…", "duplicates", ctx.cancel) : spinner("loading groups…");
    list.replaceChildren(progress);
    try {
      const page = await api(`/api/duplicates?offset=${start}&limit=${PAGE}`,
        { signal: controller.signal });
      total = page.total;
      offset = start;
      groups = page.groups.map((data, i) => groupState(data, start + i));
      list.replaceChildren(...groups.map((group) => group.card));
      if (!groups.length) list.append(message(total ? "no groups on this page"
        : "No duplicates found.", "note"));
      renderPager(page);
      refreshProgress();
    } finally {
      ctx.signal.removeEventListener("abort", abort);
      if (loading === controller) loading = null;
    }
  }

  function renderPager(page) {
    const last = Math.max(0, Math.ceil(total / PAGE) - 1) * PAGE;
    const go = (start) => () => moveTo(start);
    pager.replaceChildren(
      el("button", { class: "secondary", disabled: offset === 0, onclick: go(offset - PAGE),
        "aria-label": "previous page" }, "‹ Previous"),
      el("span", { id: "page-range" }, total
        ? `groups ${offset + 1}–${Math.min(offset + PAGE, total)} of ${total}` : ""),
      el("button", { class: "secondary", disabled: offset >= last, onclick: go(offset + PAGE),
        "aria-label": "next page" }, "Next ›"),
      el("button", { class: "secondary", id: "next-unreviewed", onclick: nextUnreviewed },
        "Next unreviewed"),
      el("span", { class: "note" }, `cosine ≥ ${page.threshold.toFixed(3)}, ` +
        (page.verified ? "pairs verified by local features" : "pairs not verified")));
  }

  // -- one group -----------------------------------------------------------------------------
  function groupState(data, at) {
    const saved = local.get(data.key);
    const group = {
      data, at, cursor: Math.max(0, data.members.findIndex((m) => !m.keeper)),
      choices: saved?.choices ?? new Map(data.members.map((m) =>
        [m.image.id, initialChoice(data, m)])),
      reviewed: saved?.reviewed ?? Boolean(data.reviewed),
    };
    group.state = el("span", { class: "saved" });
    group.warning = el("p", { class: "warn", hidden: true });
    group.figures = data.members.map((member, i) => memberFigure(group, member, i));
    group.reviewButton = el("button", { class: "reviewed-toggle", "aria-pressed": "false",
      onclick: () => setReviewed(group, !group.reviewed) }, "Reviewed");
    const [first, second] = compareIds(group);
    group.card = el("section", { class: "dup-group", "data-key": data.key, "data-index": at,
      tabindex: "-1", "aria-label": `group ${at + 1} of ${total}`,
      onclick: () => { if (index !== at) setCurrent(at, false); } },
    el("div", { class: "bar" },
      el("h2", {}, `${at + 1}. `, tierBadge(tierOf(data)) ?? `${data.kind} `,
        ` ${data.members.length} files`),
      group.reviewButton,
      el("button", { class: "secondary keep-all", onclick: () => decideAll(group, "keep-all") },
        "Keep all"),
      el("button", { class: "secondary not-duplicates",
        onclick: () => decideAll(group, "not-duplicates") }, "Not duplicates"),
      el("a", { class: "button secondary", href: `#compare/${first}/${second}/${data.key}` },
        "Compare"),
      group.state),
    el("div", { class: "side-by-side" }, group.figures), group.warning);
    paint(group);
    return group;
  }

  function compareIds(group) {
    const ids = group.data.members.map((m) => m.image.id);
    const keeper = ids.find((id) => group.choices.get(id) === "keep") ?? ids[0];
    const other = ids[group.cursor] !== keeper ? ids[group.cursor]
      : ids.find((id) => id !== keeper);
    return [keeper, other ?? keeper];
  }

  function memberFigure(group, member, i) {
    const image = member.image;
    const tier = member.keeper ? null : tierOf({}, member);
    const evidence = evidenceText(member.evidence);
    const reasons = member.keeper ? group.data.keeper_reasons ?? [] : [];
    const choose = (decision) => (event) => {
      event.stopPropagation();
      group.cursor = i;
      setChoice(group, image.id, decision);
    };
    return el("figure", { class: "member", "data-id": image.id },
      el("span", { class: "key", "aria-hidden": "true" }, i < 9 ? String(i + 1) : ""),
      el("a", { href: `#image/${image.id}` },
        el("img", { src: `${image.thumb}?size=256`, alt: name(image.path), loading: "lazy" })),
      el("figcaption", {},
        el("div", { class: "path", title: image.path }, image.path),
        el("div", {}, `${image.width ?? "?"} × ${image.height ?? "?"} · ${bytes(image.size)}` +
          (member.keeper ? "" : ` · ${member.score.toFixed(3)}`)),
        el("div", { class: "badges" },
          member.keeper ? el("span", { class: "badge suggested" }, "suggested keeper") : null,
          reasons.map((reason) => el("span", { class: "badge reason" }, reason)),
          tierBadge(tier)),
        evidence ? el("div", { class: "evidence" }, evidence) : null,
        el("div", { class: "choices", role: "group", "aria-label": `decision for ${name(image.path)}` },
          el("button", { class: "choice keep", "aria-pressed": "false", onclick: choose("keep") },
            "Keep"),
          el("button", { class: "choice discard", "aria-pressed": "false",
            onclick: choose("discard") }, "Discard"))));
  }

  function paint(group) {
    group.data.members.forEach((member, i) => {
      const figure = group.figures[i];
      const choice = group.choices.get(member.image.id);
      figure.classList.toggle("keep", choice === "keep");
      figure.classList.toggle("discard", choice === "discard");
      figure.classList.toggle("not-duplicate", choice === "not-duplicate");
      figure.classList.toggle("suggested", member.keeper);
      figure.classList.toggle("cursor", i === group.cursor && group.at === index);
      figure.querySelector(".choice.keep").setAttribute("aria-pressed", String(choice === "keep"));
      figure.querySelector(".choice.discard").setAttribute("aria-pressed",
        String(choice === "discard"));
    });
    group.card.classList.toggle("reviewed", group.reviewed);
    group.card.classList.toggle("current", group.at === index);
    group.reviewButton.setAttribute("aria-pressed", String(group.reviewed));
    group.reviewButton.textContent = group.reviewed ? "Reviewed ✓" : "Mark reviewed";
    const unsaved = saver.isUnsaved(group.data.key);
    group.state.textContent = unsaved ? (saver.lastError() ? "not saved yet (will retry)"
      : "saving…") : (local.has(group.data.key) ? "saved" : "");
    group.state.classList.toggle("error", unsaved && Boolean(saver.lastError()));
    const [first, second] = compareIds(group);
    group.card.querySelector("a.button").href = `#compare/${first}/${second}/${group.data.key}`;
  }

  function keepLocally(group) {
    local.set(group.data.key, { choices: group.choices, reviewed: group.reviewed });
  }

  function saveMarks(group) {
    keepLocally(group);
    saver.queueMarks(group.data.key, [...group.choices].map(([id, decision]) =>
      ({ file_id: id, decision, group: group.data.key })));
    paint(group);
  }

  function warn(group, text) {
    group.warning.textContent = text;
    group.warning.hidden = !text;
  }

  /** Set one member's decision; refused where it would leave the group with nothing kept. */
  function setChoice(group, id, decision) {
    const next = new Map(group.choices).set(id, decision);
    if (![...next.values()].some((d) => d !== "discard")) {
      warn(group, "Every file of this group would be discarded: keep at least one.");
      return false;
    }
    warn(group, "");
    group.choices = next;
    saveMarks(group);
    return true;
  }

  function pickKeeper(group, i) {
    const member = group.data.members[i];
    if (!member) return;
    group.cursor = i;
    group.choices = new Map(group.data.members.map((m) =>
      [m.image.id, m === member ? "keep" : "discard"]));
    warn(group, "");
    saveMarks(group);
  }

  function decideAll(group, decision) {
    const mark = decision === "keep-all" ? "keep" : "not-duplicate";
    group.choices = new Map(group.data.members.map((m) => [m.image.id, mark]));
    group.reviewed = true;
    warn(group, "");
    saveMarks(group);
    saver.queueReview(group.data.key, true, decision);
  }

  function setReviewed(group, reviewed) {
    if (reviewed && ![...group.choices.values()].some((d) => d !== "discard")) {
      warn(group, "Every file of this group is marked discard: keep at least one first.");
      return false;
    }
    group.reviewed = reviewed;
    saveMarks(group); // the decisions shown are the decisions, suggested or chosen
    saver.queueReview(group.data.key, reviewed, null);
    return true;
  }

  // -- moving through the queue --------------------------------------------------------------
  const current = () => groups[index - offset];

  function setCurrent(at, scroll = true) {
    const before = current();
    index = at;
    if (before) paint(before);
    const group = current();
    if (!group) return;
    paint(group);
    // the place goes into the URL once moving pauses: browsers throttle fast replaceStates
    clearTimeout(placeTimer);
    placeTimer = setTimeout(() => {
      if (!ctx.signal.aborted) history.replaceState(history.state, "", `#duplicates/${at}`);
    }, 200);
    announce(`group ${at + 1} of ${total}`);
    if (scroll) {
      group.card.scrollIntoView({ block: "nearest" });
      group.card.focus({ preventScroll: true });
    }
  }

  async function moveTo(at) {
    if (!total) return;
    const target = Math.max(0, Math.min(total - 1, at));
    const start = Math.floor(target / PAGE) * PAGE;
    if (start !== offset) {
      try {
        await loadPage(start);
      } catch (error) {
        if (!isStale(error)) say(`Could not load groups: ${error.message}`, "error");
        return;
      }
    }
    setCurrent(target);
  }

  /** The next group not reviewed yet, paging on as far as it takes. */
  async function nextUnreviewed() {
    try {
      for (let at = index + 1; at < total; at = offset + PAGE) {
        const start = Math.floor(at / PAGE) * PAGE;
        if (start !== offset) await loadPage(start);
        const found = groups.find((group) => group.at >= at && !group.reviewed);
        if (found) { setCurrent(found.at); return; }
      }
    } catch (error) {
      if (!isStale(error)) say(`Could not load groups: ${error.message}`, "error");
      return;
    }
    say("Every group after this one is reviewed.");
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || dialog?.open || loading) return;
    if (event.target.closest?.("input, select, textarea")) return;
    const group = current();
    const key = event.key;
    let handled = true;
    if (key === "j" || key === "ArrowDown") moveTo(index + 1);
    else if (key === "k" || key === "ArrowUp") moveTo(index - 1);
    else if (key === "n") nextUnreviewed();
    else if (!group) handled = false;
    else if (/^[1-9]$/.test(key)) pickKeeper(group, Number(key) - 1);
    else if (key === "h" || key === "l" || key === "ArrowLeft" || key === "ArrowRight") {
      const step = key === "h" || key === "ArrowLeft" ? -1 : 1;
      const count = group.data.members.length;
      group.cursor = (group.cursor + step + count) % count;
      paint(group);
    } else if (key === "d") {
      const id = group.data.members[group.cursor].image.id;
      setChoice(group, id, group.choices.get(id) === "discard" ? "keep" : "discard");
    } else if (key === "r") {
      if (setReviewed(group, true) && index < total - 1) moveTo(index + 1);
    } else if (key === "c") {
      const [first, second] = compareIds(group);
      location.hash = `#compare/${first}/${second}/${group.data.key}`;
    } else handled = false;
    if (handled) event.preventDefault();
  }, { signal: ctx.signal });

  // -- progress ------------------------------------------------------------------------------
  function refreshProgress() {
    clearTimeout(statusTimer);
    statusTimer = setTimeout(async () => {
      try {
        status = await api("/api/review/status", { signal: ctx.signal });
      } catch (error) {
        if (isStale(error)) return;
        status = null; // no answer: count what this page has seen
      }
      showProgress();
    }, 300);
  }

  function showProgress() {
    let reviewed = groups.filter((g) => g.reviewed).length;
    let toFree = groups.reduce((sum, g) => sum + g.data.members.reduce((s, m) =>
      s + (g.choices.get(m.image.id) === "discard" ? m.image.size : 0), 0), 0);
    let of = total;
    if (status) ({ reviewed, total: of, bytes_to_free: toFree } = status);
    progressText.textContent = `${reviewed} of ${of} reviewed, ${bytes(toFree)} to free` +
      (status ? "" : " on this page");
    const run = status?.last_run;
    undo.hidden = !run || run.undone;
    if (run) undo.title = `${run.files} files moved to ${run.folder}`;
  }

  saver.onSaved(() => {
    for (const group of groups) paint(group);
    const error = saver.lastError();
    say(error ? `Choices not saved yet (${error.message}); they are kept in this page and ` +
      "sent again when the server answers. Leaving now would lose them." : "",
    error ? "error" : "note");
    refreshProgress();
  }, ctx.signal);

  // -- acting on the decisions ---------------------------------------------------------------
  async function reload() {
    local.clear();
    await loadPage(Math.floor(Math.min(index, Math.max(0, total - 1)) / PAGE) * PAGE);
    setCurrent(Math.min(index, Math.max(0, total - 1)), false);
  }

  async function acceptSuggestions() {
    say("");
    try {
      await saver.flush();
      const result = await postJSON("/api/review/accept-suggestions",
        { tiers: ["exact", "edited"] });
      say(`Suggestions accepted for ${result.groups} groups (${result.files} files)` +
        (result.passed_over ? `; ${result.passed_over} groups you had already marked were ` +
          "left as they are" : "") + ". Their discarded copies are ready to move.");
      await reload();
    } catch (error) {
      if (!isStale(error)) say(`Could not accept the suggestions: ${error.message}`, "error");
    }
  }

  function openDialog(...content) {
    dialog?.remove();
    dialog = el("dialog", { id: "move-dialog", "aria-labelledby": "move-title",
      onclose: () => dialog?.remove() }, ...content);
    ctx.root.append(dialog);
    dialog.showModal();
    return dialog;
  }

  async function planMove() {
    say("");
    const progress = spinner("saving choices, then listing the files to move…");
    openDialog(el("h2", { id: "move-title" }, "Move discarded copies"), progress);
    let plan;
    try {
      await saver.flush();
      plan = await postJSON("/api/review/plan", {}, ctx.signal);
    } catch (error) {
      if (isStale(error)) return;
      progress.replaceWith(message(`No plan: ${error.message}`, "error"),
        el("button", { onclick: () => dialog.close() }, "Close"));
      return;
    }
    const moves = plan.moves;
    const confirm = el("button", { id: "confirm-move", disabled: !moves.length,
      onclick: applyMove }, `Move ${moves.length} files (${bytes(plan.bytes)})`);
    progress.replaceWith(
      message(moves.length ? `${moves.length} discarded copies, ${bytes(plan.bytes)} freed, ` +
        `moved to ${plan.folder}: not deleted, and the move can be undone.`
        : "No discarded copies to move: mark some copies Discard first."),
      moves.length ? el("ul", { class: "plan" }, moves.map((move) => el("li", {},
        el("span", { class: "path" }, move.path), " ",
        el("span", { class: "note" }, bytes(move.size))))) : null,
      plan.refused.length || plan.skipped.length ? [el("h3", {}, "Left in place"),
        el("ul", { class: "plan refused" },
          plan.refused.map((r) => el("li", {}, `${r.paths.join(", ")}: ${r.reason}`)),
          plan.skipped.map((f) => el("li", {}, `${f.path}: ${f.reason}`)))] : null,
      el("div", { class: "bar" }, confirm,
        el("button", { class: "secondary", onclick: () => dialog.close() }, "Cancel")));
    confirm.focus();
  }

  async function applyMove() {
    const progress = spinner("moving the discarded copies to quarantine…");
    dialog.replaceChildren(el("h2", { id: "move-title" }, "Moving discarded copies"), progress);
    try {
      const done = await postJSON("/api/review/apply", {});
      progress.replaceWith(
        message(`Moved ${done.done} files to ${done.folder}, ${bytes(done.bytes)} freed.`,
          "done"),
        done.failed.length ? el("ul", { class: "plan refused" }, done.failed.map((f) =>
          el("li", {}, `not moved: ${f.path}: ${f.reason}`))) : null,
        el("div", { class: "bar" },
          el("button", { id: "undo-move", onclick: undoMove }, "Undo"),
          el("button", { class: "secondary", onclick: () => dialog.close() }, "Close")));
      await reload();
    } catch (error) {
      if (!isStale(error)) progress.replaceWith(message(`Not moved: ${error.message}`, "error"));
    }
  }

  async function undoMove() {
    const progress = spinner("moving the files back…");
    if (dialog?.open) dialog.replaceChildren(el("h2", { id: "move-title" }, "Undo"), progress);
    else openDialog(el("h2", { id: "move-title" }, "Undo"), progress);
    try {
      const done = await postJSON("/api/review/undo", {});
      progress.replaceWith(message(`${done.undone} files are back where they were.`, "done"),
        done.kept.length || done.failed.length ? el("ul", { class: "plan refused" },
          [...done.kept, ...done.failed].map((f) => el("li", {}, `${f.path}: ${f.reason}`)))
          : null,
        el("button", { id: "close-move", onclick: () => dialog.close() }, "Close"));
      await reload();
    } catch (error) {
      if (!isStale(error)) progress.replaceWith(message(`Not undone: ${error.message}`, "error"));
    }
  }

  await loadPage(Math.floor(position / PAGE) * PAGE, true);
  setCurrent(Math.min(position, Math.max(0, total - 1)), position > 0);
}
