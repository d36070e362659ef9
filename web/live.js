// The live seat map socket (WS /v1/shows/{id}/live): a snapshot, then deltas that chain by
// version. A delta applies only when its from_version is our version; anything else (a gap
// after a drop) reconnects with ?since=<our version>, and the server answers with what we
// missed (a delta, or a fresh snapshot when it no longer can). Reconnecting after a drop is
// web/socket.js's.

import { ReconnectingSocket, socketUrl } from "./socket.js";

export class LiveSeatMap extends ReconnectingSocket {
  constructor(showId, { onSnapshot, onDelta, onGone }) {
    super();
    this.showId = showId;
    this.onSnapshot = onSnapshot;
    this.onDelta = onDelta;
    this.onGone = onGone;
    this.version = null;
  }

  url() {
    const since = this.version === null ? "" : `?since=${this.version}`;
    return socketUrl(`/v1/shows/${encodeURIComponent(this.showId)}/live${since}`);
  }

  received(frame) {
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
}
