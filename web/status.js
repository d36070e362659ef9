// The banner: offline (the browser says so, or the server or the live socket cannot be
// reached) comes first; otherwise stale reads (`X-Boxoffice-Stale: true`: served from the
// latest snapshot while the journal is away).

let browserOnline = navigator.onLine;
let networkOk = true;
let socketOk = true;
const stale = new Set();

export function setNetwork(ok) {
  networkOk = ok;
  render();
}

export function setSocket(ok) {
  socketOk = ok;
  // A live socket means the server answers, whatever an earlier request ran into.
  if (ok) networkOk = true;
  render();
}

export function setStale(source, isStale) {
  if (isStale) stale.add(source);
  else stale.delete(source);
  render();
}

export function isStale(source) {
  return stale.has(source);
}

export function forget(source) {
  stale.delete(source);
  render();
}

function render() {
  const banner = document.getElementById("banner");
  if (!banner) return;
  let text = "";
  let kind = "";
  if (!browserOnline) {
    text = "You are offline. This page will catch up when the connection is back.";
    kind = "offline";
  } else if (!networkOk || !socketOk) {
    text = "Connection lost. Reconnecting…";
    kind = "offline";
  } else if (stale.size) {
    text = "Showing saved data: live updates are delayed and buying may fail for a moment.";
    kind = "stale";
  }
  banner.hidden = !text;
  banner.textContent = text;
  banner.dataset.kind = kind;
}

window.addEventListener("offline", () => {
  browserOnline = false;
  render();
});
window.addEventListener("online", () => {
  browserOnline = true;
  render();
});
document.addEventListener("DOMContentLoaded", render);
