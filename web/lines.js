// The lines on a show's page (the contract's Lines section): the online waitlist ("join the
// line" when nothing a hold could get is free, the live position, the offer with its
// countdown) and the waiting room of a queued show (early / position / admitted at / the
// pass), which keeps holding locked until the fan's pass is valid.

import { ApiError, command, get, serverNow } from "./api.js";
import { h, notice, when } from "./dom.js";
import { explain } from "./order.js";
import * as session from "./session.js";
import { ReconnectingSocket, socketUrl } from "./socket.js";

const MAX_QUANTITY = 10; // the contract's most places per waitlist entry

// A line's live socket (`?token=T`): frames to `onFrame`; it comes back after a drop
// (web/socket.js), unless the server said it never will serve this fan (the error frame
// before its close). The seat map's socket drives the offline banner, not this one.
const FINAL = new Set(["unauthorized", "show_not_found", "not_in_line", "not_in_queue", "no_queue"]);

class LineSocket extends ReconnectingSocket {
  constructor(path, onFrame) {
    super({ banner: false });
    this.path = path;
    this.onFrame = onFrame;
    this.start();
  }

  url() {
    const signedIn = session.current();
    if (!signedIn) {
      this.stop();
      return null;
    }
    return socketUrl(`${this.path}?token=${encodeURIComponent(signedIn.token)}`);
  }

  received(frame) {
    if (frame.type === "error" && FINAL.has(frame.code)) this.stop();
    else this.healthy();
    this.onFrame(frame);
  }
}

function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(s / 60);
  return m >= 60
    ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
    : `${m}:${String(s % 60).padStart(2, "0")}`;
}

function askToSignIn(what) {
  sessionStorage.setItem("boxoffice.return", location.hash);
  return [notice("info", `Sign in to ${what}.`), h("p", {}, h("a", { href: "#/signin" }, "Sign in or create an account"))];
}

// -- the online waitlist ---------------------------------------------------------------------

// `showOffer(order)`: the page shows the offered order (a held order of this fan) with its
// countdown, pay and cancel. Returns {element, start, soldOut(bool), suggest(), stop}.
export function waitlistPanel(show, { showOffer }) {
  const showId = show.show_id;
  const base = `/v1/shows/${encodeURIComponent(showId)}/waitlist`;
  const sections = show.sections || [];
  const zones = show.zones || [];
  const root = h("section.line", { "aria-labelledby": "line-heading", hidden: true });
  const messages = h("div.messages", { "aria-live": "polite" });
  // The position is said politely whenever it changes; the offer is said at once (alert).
  const state = h("div.line-state", { "aria-live": "polite" });
  let entry = null; // the fan's live entry (waiting), or null
  let offer = null; // the offered frame, once one came
  let socket = null;
  let soldOut = false;
  let suggested = false;
  let stopped = false;

  const say = (kind, text) => messages.replaceChildren(notice(kind, text));

  // The join form: how many places, and where.
  const qty = h("input", { id: "line-qty", type: "number", min: 1, max: MAX_QUANTITY, value: 1, required: true });
  const where = h(
    "select",
    { id: "line-where" },
    h("option", { value: "" }, "anywhere"),
    sections.map((s) => h("option", { value: `section:${s.name}` }, `section ${s.name}`)),
    zones.map((z) => h("option", { value: `zone:${z.name}` }, `zone ${z.name}`)),
  );
  const joinButton = h("button", { type: "submit" }, "Join the line");
  const joinForm = h(
    "form.line-join",
    { "aria-label": "Join the line" },
    h("label", { for: "line-qty" }, "Places:"),
    qty,
    h("label", { for: "line-where" }, "in"),
    where,
    joinButton,
  );
  joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    join();
  });
  const leaveButton = h("button.secondary", { type: "button" }, "Leave the line");
  leaveButton.addEventListener("click", leave);

  function render() {
    root.hidden = !(entry || offer || soldOut || suggested);
    const parts = [h("h2", { id: "line-heading" }, "The line")];
    if (offer) {
      parts.push(offerNotice());
    } else if (entry) {
      parts.push(state, h("div.actions", {}, leaveButton));
      showPosition();
    } else {
      parts.push(
        h(
          "p",
          {},
          soldOut
            ? "Sold out right now. Join the line: when places come back they go to the line first, in line order, and you get the time to pay for them."
            : "Nothing free fits your request? Join the line: when places come back they go to the line first, in line order.",
        ),
        session.current() ? joinForm : askToSignIn("join the line"),
      );
    }
    root.replaceChildren(...parts, messages);
  }

  function showPosition() {
    const about = entry.zone ? `zone ${entry.zone}` : entry.section ? `section ${entry.section}` : "anywhere";
    const places = `${entry.quantity} ${entry.quantity === 1 ? "place" : "places"}, ${about}`;
    state.replaceChildren(
      h(
        "p.position",
        { dataset: { position: String(entry.position ?? ""), status: entry.status } },
        entry.position ? `You are number ${entry.position} in the line` : "You are in the line",
        ` (${places}).`,
      ),
      h("p.help", {}, "Keep this page open or come back: when places come back for you, they are held for you here."),
    );
  }

  function offerNotice() {
    const what = offer.seats && offer.seats.length ? offer.seats.join(", ") : offer.zone ? `${offer.zone.quantity} in zone ${offer.zone.name}` : "your places";
    return h(
      "p.notice.ok.offer",
      { role: "alert" },
      `Your turn! Places came back for you: ${what}. They are held for you until ${when(offer.expires_at)}: pay below before the countdown ends.`,
    );
  }

  async function start() {
    if (!session.current()) return render();
    try {
      const found = await get(`${base}/me`);
      if (found.status === "waiting") {
        entry = found;
        follow();
      } else if (found.status === "offered" && found.order_id) {
        await offered({ order_id: found.order_id, entry_id: found.entry_id }, true);
      }
    } catch (error) {
      if (!(error instanceof ApiError && error.code === "not_in_line")) say("error", explain(error));
    }
    render();
  }

  async function join() {
    const body = { quantity: Number(qty.value) };
    if (where.value) {
      const [kind, name] = where.value.split(":");
      body[kind] = name;
    }
    joinButton.disabled = true;
    say("info", "Joining the line…");
    try {
      entry = await command("POST", base, body);
      messages.replaceChildren();
      if (entry.status === "offered" && entry.order_id) {
        await offered({ order_id: entry.order_id, entry_id: entry.entry_id }, true);
      } else {
        render();
        follow();
      }
    } catch (error) {
      if (error instanceof ApiError && error.code === "seats_available") {
        say("info", `${error.details.available || "Some"} places are free for that right now: hold them instead of waiting.`);
      } else {
        say("error", explain(error));
      }
    } finally {
      joinButton.disabled = false;
    }
  }

  async function leave() {
    leaveButton.disabled = true;
    try {
      await command("DELETE", `${base}/me`);
      stopFollowing();
      entry = null;
      render();
      say("ok", "You left the line.");
    } catch (error) {
      say("error", explain(error));
    } finally {
      leaveButton.disabled = false;
    }
  }

  function follow() {
    if (socket || stopped) return;
    socket = new LineSocket(`${base}/live`, (frame) => {
      if (frame.type === "position") {
        if (frame.status === "left") {
          stopFollowing();
          entry = null;
          render();
        } else if (entry) {
          entry = { ...entry, status: frame.status, position: frame.position };
          if (!offer) showPosition();
        }
      } else if (frame.type === "offered") {
        offered(frame, false);
      } else if (frame.type === "error") {
        if (frame.code === "not_in_line") {
          stopFollowing();
          entry = null;
          render();
        }
      }
    });
  }

  function stopFollowing() {
    if (socket) socket.stop();
    socket = null;
  }

  // The offer: the page says so, and the held order it is comes up with its countdown.
  async function offered(frame, quiet) {
    if (offer && offer.order_id === frame.order_id) return;
    stopFollowing();
    let order = null;
    // The order's view may trail the offer by a moment.
    for (let attempt = 0; attempt < 10 && !stopped; attempt++) {
      try {
        order = await get(`/v1/orders/${encodeURIComponent(frame.order_id)}`);
        break;
      } catch (error) {
        if (!(error instanceof ApiError && (error.status === 404 || error.status === 503))) {
          say("error", explain(error));
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 300 * (attempt + 1)));
      }
    }
    if (stopped || !order) return;
    entry = null;
    if (order.status !== "held") {
      // An offer already paid, cancelled or lapsed: nothing to say on page load.
      if (!quiet) say("info", `The places offered to you are ${order.status}.`);
      render();
      return;
    }
    offer = { order_id: order.order_id, seats: order.seats, zone: order.zone, expires_at: frame.expires_at || order.expires_at };
    render();
    showOffer(order);
  }

  return {
    element: root,
    start,
    // Whether nothing a hold could get is free (from the live map): the line is offered then.
    soldOut(nothingFree) {
      if (nothingFree === soldOut) return;
      soldOut = nothingFree;
      if (!entry && !offer) render();
    },
    // A hold was refused for want of places: offer the line (the server decides if it may).
    suggest() {
      suggested = true;
      if (!entry && !offer) render();
    },
    // The offer's order is over (paid, cancelled, lapsed): the line can be joined again.
    offerSettled(orderId) {
      if (!offer || offer.order_id !== orderId) return;
      offer = null;
      render();
    },
    stop() {
      stopped = true;
      stopFollowing();
    },
  };
}

// -- the waiting room ------------------------------------------------------------------------

// `onChange(open)`: whether holding is allowed now (a valid pass). Returns {element, start,
// open(), refresh(), stop}.
export function waitingRoom(show, { onChange }) {
  const showId = show.show_id;
  const base = `/v1/shows/${encodeURIComponent(showId)}/queue`;
  const spec = show.queue;
  const root = h("section.room", { "aria-labelledby": "room-heading" });
  const messages = h("div.messages", { "aria-live": "polite" });
  const state = h("div.room-state", { "aria-live": "polite" });
  const timerText = h("p.countdown", { role: "timer", "aria-live": "off" });
  let place = null; // {status, position, admitted_at, pass_expires_at}
  let socket = null;
  let timer = null;
  let wasOpen = false;
  let stopped = false;

  const say = (kind, text) => messages.replaceChildren(notice(kind, text));
  const joinButton = h("button", { type: "button" }, "Join the waiting room");
  joinButton.addEventListener("click", join);

  const passMs = () => (spec.pass_seconds || 0) * 1000;
  function passEnds() {
    if (place.pass_expires_at) return Date.parse(place.pass_expires_at);
    return place.admitted_at ? Date.parse(place.admitted_at) + passMs() : NaN;
  }

  // The status as of now: admission and the pass's end are the clock's, as on the server.
  function effective() {
    if (!place) return null;
    const now = serverNow();
    if (place.status === "waiting" && place.admitted_at && Date.parse(place.admitted_at) <= now) {
      return passEnds() > now ? "admitted" : "expired";
    }
    if (place.status === "admitted" && passEnds() <= now) return "expired";
    return place.status;
  }

  function isOpen() {
    return effective() === "admitted";
  }

  function intro() {
    const minutes = Math.round((spec.pass_seconds || 0) / 60);
    return h(
      "p",
      {},
      `This show sells through a waiting room. It opens ${when(spec.opens_at)}; ${spec.admit_per_minute === 1 ? "1 fan is" : `${spec.admit_per_minute} fans are`} let in per minute, each with a pass to buy for ${minutes >= 1 ? `${minutes} min` : `${spec.pass_seconds} s`}. `,
      "Everyone who joins before the opening gets a random place (joining first or refreshing gains nothing); later joiners follow in order.",
    );
  }

  function render() {
    const parts = [h("h2", { id: "room-heading" }, "Waiting room"), intro()];
    if (!session.current()) parts.push(...askToSignIn("join the waiting room"));
    else if (!place) parts.push(h("div.actions", {}, joinButton));
    else parts.push(state, timerText);
    root.replaceChildren(...parts, messages);
    if (place) tick(true);
  }

  function tick(force = false) {
    const status = effective();
    const now = serverNow();
    if (!place) return;
    const before = state.dataset.status;
    if (force || before !== status || (status === "waiting" && state.dataset.position !== String(place.position))) {
      state.dataset.status = status;
      state.dataset.position = String(place.position ?? "");
      root.dataset.status = status;
      let text;
      if (status === "early") {
        text = `You are in, early. At the opening (${when(spec.opens_at)}) everyone who joined early gets a random place in line.`;
      } else if (status === "waiting") {
        text = `You are number ${place.position} in the queue. Your turn comes at ${when(place.admitted_at)}.`;
      } else if (status === "admitted") {
        text = `It is your turn: you may buy now, until ${when(new Date(passEnds()).toISOString())}.`;
      } else {
        text = "Your pass has expired: you can no longer buy through this waiting room.";
      }
      state.replaceChildren(h("p.room-status", { dataset: { status } }, h("span.status", { dataset: { status } }, status), " ", text));
    }
    if (status === "early") timerText.textContent = `Opens in ${clock(Date.parse(spec.opens_at) - now)}`;
    else if (status === "waiting") timerText.textContent = `Your turn in ${clock(Date.parse(place.admitted_at) - now)}`;
    else if (status === "admitted") timerText.textContent = `Pass valid for ${clock(passEnds() - now)}`;
    else timerText.textContent = "";
    const open = status === "admitted";
    if (open !== wasOpen) {
      wasOpen = open;
      onChange(open);
    }
  }

  function update(next) {
    place = { ...(place || {}), ...next };
    if (!timer) timer = setInterval(() => tick(), 250);
    render();
  }

  async function start() {
    render();
    onChange(false);
    if (!session.current()) return;
    try {
      update(await get(`${base}/me`));
      follow();
    } catch (error) {
      if (!(error instanceof ApiError && error.code === "not_in_queue")) say("error", explain(error));
    }
  }

  async function join() {
    joinButton.disabled = true;
    say("info", "Joining the waiting room…");
    try {
      const joined = await command("POST", base);
      messages.replaceChildren();
      update(joined);
      follow();
    } catch (error) {
      say("error", explain(error));
    } finally {
      joinButton.disabled = false;
    }
  }

  function follow() {
    if (socket || stopped) return;
    socket = new LineSocket(`${base}/live`, (frame) => {
      if (frame.type === "position") {
        update({ status: frame.status, position: frame.position, admitted_at: frame.admitted_at });
      } else if (frame.type === "admitted") {
        update({ pass_expires_at: frame.pass_expires_at });
      }
    });
  }

  return {
    element: root,
    start,
    open: isOpen,
    // A hold was refused for want of a pass: read the place again.
    async refresh() {
      if (!session.current()) return;
      try {
        update(await get(`${base}/me`));
        follow();
      } catch (error) {
        if (error instanceof ApiError && error.code === "not_in_queue") {
          place = null;
          render();
        }
      }
    },
    stop() {
      stopped = true;
      clearInterval(timer);
      if (socket) socket.stop();
    },
  };
}
