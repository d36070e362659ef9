// A show's page: the live seat map, zones with their counts, picking seats (click or
// keyboard), "best N seats", holding in a zone, and the order panel once something is held.

import { ApiError, command, get } from "./api.js";
import { h, money, notice, when } from "./dom.js";
import { waitingRoom, waitlistPanel } from "./lines.js";
import { LiveSeatMap } from "./live.js";
import { explain, orderPanel } from "./order.js";
import { SeatMap } from "./seatmap.js";
import * as session from "./session.js";
import * as status from "./status.js";

const MAX_SEATS = 50; // the contract's most seats per hold

export async function showPage(main, showId) {
  performance.clearMarks();
  performance.mark("show-page-start");
  const cleanup = [];
  main.replaceChildren(h("p.loading", {}, "Loading the show…"));
  let show;
  try {
    show = await get(`/v1/shows/${encodeURIComponent(showId)}`, { staleSource: "show" });
  } catch (error) {
    main.replaceChildren(
      h("h1", {}, "Show"),
      notice("error", error instanceof ApiError && error.status === 404 ? "There is no such show." : explain(error)),
      h("p", {}, h("a", { href: "#/" }, "Back to the shows")),
    );
    return () => status.forget("show");
  }
  cleanup.push(() => status.forget("show"));
  performance.mark("show-fetched");

  const sections = show.sections || [];
  const zones = show.zones || [];
  const seatCount = sections.reduce((n, s) => n + s.rows * s.seats_per_row, 0);
  const messages = h("div.messages", { "aria-live": "polite" });
  const say = (kind, text) => messages.replaceChildren(notice(kind, text));
  const announcer = h("p.sr-only", { "aria-live": "polite" });
  const liveState = h("span.live-state", { dataset: { version: "" } }, "connecting…");
  const orderSlot = h("div.order-slot");
  let panel = null;

  // Selection summary and the hold button for picked seats.
  const summary = h("p.summary", {}, "No seats selected.");
  const holdPicked = h("button", { type: "button", disabled: true }, "Hold selected seats");
  const clearPicked = h("button.secondary", { type: "button", disabled: true }, "Clear");
  const price = new Map(sections.map((s) => [s.name, s.price_cents]));

  let map = null;
  if (seatCount) {
    map = new SeatMap(sections, {
      label: `Seat map of ${show.name}: ${seatCount} seats. Arrow keys move, Enter selects.`,
      onToggle: (id, on, refusal) => {
        if (refusal) {
          say("error", refusal);
          return;
        }
        if (on && map.selected.size > MAX_SEATS) {
          map.toggle(id);
          say("error", `At most ${MAX_SEATS} seats per hold.`);
          return;
        }
        announcer.textContent = `${on ? "Selected" : "Unselected"} ${id}. ${map.selected.size} selected.`;
        updateSummary();
      },
    });
  }

  function updateSummary() {
    const picked = map ? [...map.selected] : [];
    const total = picked.reduce((n, id) => n + (price.get(id.split("-")[0]) || 0), 0);
    summary.textContent = picked.length
      ? `Selected ${picked.length}: ${picked.join(", ")} (${money(total)})`
      : "No seats selected.";
    holdPicked.disabled = !picked.length;
    clearPicked.disabled = !picked.length;
  }

  function signedIn() {
    if (session.current()) return true;
    sessionStorage.setItem("boxoffice.return", location.hash);
    messages.replaceChildren(
      notice("error", "Sign in to hold seats."),
      h("p", {}, h("a", { href: "#/signin" }, "Sign in or create an account")),
    );
    return false;
  }

  async function hold(body, button) {
    if (!signedIn()) return;
    if (room && !room.open()) {
      say("error", "Holding opens when the waiting room lets you in: join it above and wait for your turn.");
      return;
    }
    button.disabled = true;
    say("info", "Holding…");
    try {
      const order = await command("POST", `/v1/shows/${encodeURIComponent(showId)}/holds`, body);
      if (map) {
        map.clearSelection();
        map.markMine(order.seats, true);
        updateSummary();
      }
      say("ok", `Held ${order.seats.length ? order.seats.join(", ") : `${order.zone.quantity} in ${order.zone.name}`}. Pay before the time runs out.`);
      showOrder(order);
    } catch (error) {
      say("error", explain(error));
      if (error instanceof ApiError && ["seats_unavailable", "not_enough_seats", "zone_sold_out"].includes(error.code)) line.suggest();
      if (room && error instanceof ApiError && error.code === "queue_pass_required") room.refresh();
      // The seats someone else got are let go, so the next try asks only for free ones.
      if (map && error instanceof ApiError && error.code === "seats_unavailable") {
        for (const id of error.details.unavailable || []) if (map.selected.has(id)) map.toggle(id);
      }
    } finally {
      button.disabled = false;
      if (button === holdPicked) updateSummary();
    }
  }

  function showOrder(order, title = "Your hold") {
    if (panel) panel.stop();
    panel = orderPanel(order, {
      title,
      onChange: (changed) => {
        if (map && changed.status !== "held" && changed.status !== "paid") map.markMine(changed.seats, false);
        if (changed.status !== "held") line.offerSettled(changed.order_id);
      },
    });
    orderSlot.replaceChildren(panel.element);
    panel.element.scrollIntoView({ block: "nearest" });
  }
  cleanup.push(() => panel && panel.stop());

  // The lines: the waitlist when nothing fits, the waiting room of a queued show (holding
  // stays locked, inert, until its pass is valid). An offer from the line is a held order.
  const line = waitlistPanel(show, {
    showOffer: (order) => {
      if (map) map.markMine(order.seats, true);
      showOrder(order, "Your offer from the line");
    },
  });
  cleanup.push(() => line.stop());
  const room = show.queue ? waitingRoom(show, { onChange: (open) => lockHolding(!open) }) : null;
  if (room) cleanup.push(() => room.stop());
  const zoneCounts = {};
  function lockHolding(locked) {
    for (const el of [mapBox, bestForm, zoneTable, holdPicked, clearPicked]) if (el) el.inert = locked;
    main.dataset.locked = String(locked);
  }
  function noteFree(seats, counts) {
    Object.assign(zoneCounts, counts || {});
    let seatFree = false;
    if (map) for (const state of map.state.values()) if (state === "available" && (seatFree = true)) break;
    const zoneFree = Object.values(zoneCounts).some((c) => c.available > 0);
    line.soldOut(!seatFree && !zoneFree);
  }

  holdPicked.addEventListener("click", () => hold({ seats: [...map.selected] }, holdPicked));
  clearPicked.addEventListener("click", () => {
    map.clearSelection();
    updateSummary();
  });

  // Best available.
  const bestQty = h("input", { id: "best-qty", type: "number", min: 1, max: MAX_SEATS, value: 2, required: true });
  const bestSection = h(
    "select",
    { id: "best-section" },
    h("option", { value: "" }, "any section"),
    sections.map((s) => h("option", { value: s.name }, `section ${s.name}`)),
  );
  const bestButton = h("button", { type: "submit" }, "Hold best seats");
  const bestForm = h(
    "form.best",
    { "aria-label": "Best available seats" },
    h("label", { for: "best-qty" }, "Best seats, how many:"),
    bestQty,
    h("label", { for: "best-section" }, "in"),
    bestSection,
    bestButton,
  );
  bestForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const best = { quantity: Number(bestQty.value) };
    if (bestSection.value) best.section = bestSection.value;
    hold({ best_available: best }, bestButton);
  });

  // Zones: their counts, live, and a hold form each.
  const zoneRows = new Map();
  const zoneTable = zones.length
    ? h(
        "table.zones",
        {},
        h("caption", {}, "Zones (standing, no assigned seat)"),
        h(
          "thead",
          {},
          h("tr", {}, ["Zone", "Price", "Available", "Held", "Sold", "Hold"].map((c) => h("th", { scope: "col" }, c))),
        ),
        h(
          "tbody",
          {},
          zones.map((zone) => {
            const cells = { available: h("td", {}, "…"), held: h("td", {}, "…"), sold: h("td", {}, "…") };
            const qty = h("input", { type: "number", min: 1, max: MAX_SEATS, value: 1, "aria-label": `Places in ${zone.name}` });
            const go = h("button", { type: "submit" }, "Hold");
            const form = h("form.zone-hold", {}, qty, go);
            form.addEventListener("submit", (event) => {
              event.preventDefault();
              hold({ zone: zone.name, quantity: Number(qty.value) }, go);
            });
            const tr = h(
              "tr",
              { dataset: { zone: zone.name } },
              h("th", { scope: "row" }, zone.name),
              h("td", {}, money(zone.price_cents)),
              cells.available,
              cells.held,
              cells.sold,
              h("td", {}, form),
            );
            zoneRows.set(zone.name, cells);
            return tr;
          }),
        ),
      )
    : null;

  function updateZones(counts) {
    for (const [name, c] of Object.entries(counts || {})) {
      const cells = zoneRows.get(name);
      if (!cells) continue;
      cells.available.textContent = `${c.available} of ${c.capacity}`;
      cells.held.textContent = String(c.held);
      cells.sold.textContent = String(c.sold);
    }
  }

  // Zoom: fit (seats at least 12 px), or bigger.
  const mapBox = h("div.mapbox");
  const zoomButtons = map
    ? h(
        "div.zoom",
        { role: "group", "aria-label": "Zoom" },
        h("button.secondary", { type: "button", onclick: () => zoom(-1), "aria-label": "Zoom out" }, "−"),
        h("button.secondary", { type: "button", onclick: () => zoom(0) }, "Fit"),
        h("button.secondary", { type: "button", onclick: () => zoom(1), "aria-label": "Zoom in" }, "+"),
      )
    : null;
  let scale = 1;
  function zoom(direction) {
    if (direction === 0) scale = map.setZoom(null);
    else scale = map.setZoom(Math.min(Math.max(scale * (direction > 0 ? 1.5 : 1 / 1.5), 0.25), 4));
  }

  const legend = h(
    "ul.legend",
    { "aria-label": "Legend" },
    [
      ["available", "Available (round)"],
      ["held", "Held (hatched square)"],
      ["sold", "Sold (solid square)"],
      ["selected", "Your pick (outlined)"],
      ["mine", "Your hold (dashed outline)"],
    ].map(([state, text]) => h("li", {}, legendMark(state), text)),
  );

  const parts = [
    h("p", {}, h("a", { href: "#/" }, "← All shows")),
    h("h1", {}, show.name),
    h("p.meta", {}, when(show.starts_at), " · ", h("span", {}, "Seat map "), liveState),
    sections.length
      ? h("p.prices", {}, sections.map((s) => `Section ${s.name}: ${money(s.price_cents)}`).join(" · "))
      : null,
    messages,
    room ? room.element : null,
    line.element,
    orderSlot,
    map ? h("div.mapbar", {}, legend, zoomButtons) : null,
    map ? mapBox : null,
    map ? h("div.pick", {}, summary, h("div.actions", {}, holdPicked, clearPicked)) : null,
    map ? bestForm : null,
    zoneTable,
    announcer,
  ];
  main.replaceChildren(...parts.filter(Boolean));
  if (map) {
    mapBox.append(map.svg);
    scale = map.setZoom(null);
    performance.mark("seatmap-drawn");
  }
  if (room) room.start();
  line.start();

  const live = new LiveSeatMap(showId, {
    onSnapshot: (frame) => {
      if (!painted) performance.mark("snapshot-received");
      if (map) noteTaken(map.apply(frame.seats));
      updateZones(frame.zones);
      noteFree(frame.seats, frame.zones);
      markLive(frame.version);
      if (!painted) {
        painted = true;
        // For the first-paint measurement: a task after the next frame, i.e. once the seats
        // with their states have been painted.
        requestAnimationFrame(() => setTimeout(() => performance.mark("seatmap-painted")));
      }
    },
    onDelta: (frame) => {
      // Deltas come from the journal: while they flow, the show's reads are not stale.
      status.setStale("show", false);
      if (map) noteTaken(map.apply(frame.seats));
      updateZones(frame.zones);
      noteFree(frame.seats, frame.zones);
      markLive(frame.version);
    },
    onGone: (message) => say("error", message),
  }).start();
  let painted = false;
  cleanup.push(() => live.stop());

  // The fan's holds on this show from before this page (another tab, a reload, or a hold
  // whose answer was lost while the box office was away and that went through later): their
  // seats are marked as the fan's, and the newest comes with its countdown and payment.
  if (session.current()) {
    get("/v1/users/me/orders")
      .then(({ orders }) => {
        const held = orders.filter((o) => o.show_id === showId && o.status === "held");
        if (!held.length || panel || !main.contains(orderSlot)) return;
        if (map) for (const o of held) map.markMine(o.seats, true);
        showOrder(held[0]);
      })
      .catch(() => {
        // Not shown, not lost: My orders lists them.
      })
      .finally(() => {
        orderSlot.dataset.checked = "true";
      });
  }

  function markLive(version) {
    // While the show's reads come from the latest snapshot (Kafka away), the map is what was
    // last saved, not live: the banner says why.
    liveState.textContent = status.isStale("show") ? `as last saved (version ${version})` : `live (version ${version})`;
    liveState.dataset.version = String(version);
  }

  function noteTaken(taken) {
    if (taken.length) say("error", `${taken.join(", ")} ${taken.length === 1 ? "was" : "were"} just taken by someone else.`);
  }

  return () => cleanup.forEach((fn) => fn());
}

// The legend draws with the map's own rules (the hatching is the map's pattern, in the page).
function legendMark(state) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 12 12");
  svg.setAttribute("class", "mark");
  svg.setAttribute("aria-hidden", "true");
  const attrs = {
    available: 'data-state="available"',
    held: 'data-state="held"',
    sold: 'data-state="sold"',
    selected: 'data-state="available" aria-selected="true"',
    mine: 'data-state="held" data-mine="true"',
  }[state];
  svg.innerHTML = `<rect class="seat" x="1" y="1" width="10" height="10" ${attrs}/>`;
  return svg;
}
