// The live seat map socket (WS /v1/shows/{id}/live): a snapshot, then deltas that chain by
// version. A delta applies only when its from_version is our version; anything else (a gap
// after a drop) reconnects with ?since=<our version>, and the server answers with what we
// missed (a delta, or a fresh snapshot when it no longer can). After a drop it reconnects by
// itself with backoff (0.5 s doubling to 10 s, with jitter), at once when the browser says it
// is online again.

import * as status from "./status.js";

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;

export class LiveSeatMap {
  constructor(showId, { onSnapshot, onDelta, onGone }) {
    this.showId = showId;
    this.onSnapshot = onSnapshot;
    this.onDelta = onDelta;
    this.onGone = onGone;
    this.version = null;
    this.socket = null;
    this.stopped = false;
    this.delay = FIRST_DELAY_MS;
    this.timer = null;
    this.goneOffline = () => this.drop();
    this.backOnline = () => this.reconnectNow();
    window.addEventListener("offline", this.goneOffline);
    window.addEventListener("online", this.backOnline);
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
    if (this.socket) this.socket.close(1000, "page left");
    this.socket = null;
    status.setSocket(true);
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const since = this.version === null ? "" : `?since=${this.version}`;
    return `${scheme}//${location.host}/v1/shows/${encodeURIComponent(this.showId)}/live${since}`;
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onmessage = (event) => {
      if (socket === this.socket) this.receive(JSON.parse(event.data));
    };
    socket.onclose = () => {
      if (socket !== this.socket || this.stopped) return;
      this.socket = null;
      status.setSocket(false);
      this.retryLater();
    };
  }

  receive(frame) {
    if (frame.type === "snapshot") {
      this.version = frame.version;
      this.healthy();
      this.onSnapshot(frame);
    } else if (frame.type === "delta") {
      if (frame.from_version === this.version) {
        this.version = frame.version;
        this.healthy();
        this.onDelta(frame);
      } else if (this.version === null || frame.version > this.version) {
        // A gap: ask again from where we are rather than guess.
        this.reconnectNow();
      } // else a repeat of what we have: nothing to do.
    } else if (frame.type === "error") {
      if (frame.code === "show_not_found") {
        this.stop();
        this.onGone(frame.message);
      }
      // Anything else (unavailable): the server closes and we come back later.
    }
  }

  healthy() {
    this.delay = FIRST_DELAY_MS;
    status.setSocket(true);
  }

  retryLater() {
    clearTimeout(this.timer);
    const wait = this.delay * (0.75 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  // The browser went offline: a socket may linger half-open for minutes, so close it now;
  // the close handler shows the banner and schedules the reconnect.
  drop() {
    if (this.socket) this.socket.close(4000, "offline");
    else status.setSocket(false);
  }

  reconnectNow() {
    if (this.stopped) return;
    this.delay = FIRST_DELAY_MS;
    const old = this.socket;
    this.socket = null;
    if (old) old.close(1000, "resuming");
    this.connect();
  }
}
