// A WebSocket that comes back by itself, shared by the seat map, the lines and the chat: after
// a drop it reconnects with backoff (0.5 s doubling to 10 s, with jitter), at once when the
// browser says it is online again; when the browser goes offline it closes the socket itself
// (a half-open socket could linger for minutes). With `banner`, the page's offline banner
// follows it (status.setSocket).
//
// A subclass gives `url()` (null: do not connect now) and reacts in `opened()`,
// `received(frame)` and `closed(event)` (true: handled, do not come back).

import * as status from "./status.js";

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;

export class ReconnectingSocket {
  constructor({ banner = true } = {}) {
    this.banner = banner;
    this.socket = null;
    this.stopped = false;
    this.delay = FIRST_DELAY_MS;
    this.timer = null;
    this.goneOffline = () => this.drop();
    this.backOnline = () => this.reconnectNow();
    window.addEventListener("offline", this.goneOffline);
    window.addEventListener("online", this.backOnline);
  }

  url() {
    return null;
  }

  opened() {}

  received(_frame) {}

  closed(_event) {
    return false;
  }

  start() {
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener("offline", this.goneOffline);
    window.removeEventListener("online", this.backOnline);
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "done");
    if (this.banner) status.setSocket(true);
  }

  get open() {
    return Boolean(this.socket && this.socket.readyState === WebSocket.OPEN);
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const url = this.url();
    if (url === null) return;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      if (socket === this.socket) this.opened();
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.received(frame);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket || this.stopped) return;
      this.socket = null;
      if (this.closed(event)) return;
      if (this.banner) status.setSocket(false);
      this.retryLater();
    };
  }

  // A frame that shows the socket works: the next drop starts its backoff afresh.
  healthy() {
    this.delay = FIRST_DELAY_MS;
    if (this.banner) status.setSocket(true);
  }

  retryLater() {
    clearTimeout(this.timer);
    const wait = this.delay * (0.75 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  // The browser went offline: close now; the close handler shows the banner and schedules
  // the reconnect.
  drop() {
    if (this.socket) this.socket.close(4000, "offline");
    else if (this.banner) status.setSocket(false);
  }

  reconnectNow() {
    if (this.stopped) return;
    this.delay = FIRST_DELAY_MS;
    const old = this.socket;
    this.socket = null;
    if (old) old.close(1000, "reconnecting");
    this.connect();
  }
}

// ws: or wss:, as the page was served.
export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}
