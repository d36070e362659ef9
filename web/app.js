// The app's entry: a hash router (#/, #/signin, #/signup, #/shows/ID, #/orders), the header's
// signed-in state, and sign-out. Each page renders into <main> and returns its cleanup (a
// live socket to close, timers to stop), run when the route changes.

import { accountPage } from "./account.js";
import { get } from "./api.js";
import { organizerPage } from "./organizer.js";
import { chatPage } from "./chat.js";
import { ordersPage } from "./orders.js";
import * as session from "./session.js";
import { showPage } from "./show.js";
import { showsPage } from "./shows.js";

let leave = () => {};
let rendering = 0;

async function route() {
  const hash = location.hash || "#/";
  const run = ++rendering;
  leave();
  leave = () => {};
  // Each route renders into a view of its own: a page still loading when a newer route
  // starts (the shows list after signing in, when the fan already clicked Organize) then
  // writes only into its detached view, never over the newer page.
  const main = document.createElement("div");
  main.className = "view";
  document.getElementById("main").replaceChildren(main);
  let cleanup;
  const show = hash.match(/^#\/shows\/([^/?]+)$/);
  const chat = hash.match(/^#\/chat(?:\/([^/?]+))?$/);
  if (hash === "#/signin" || hash === "#/signup") {
    accountPage(main, hash.slice(2));
  } else if (show) {
    cleanup = await showPage(main, decodeURIComponent(show[1]));
  } else if (hash === "#/orders") {
    cleanup = await ordersPage(main);
  } else if (hash === "#/organize") {
    organizerPage(main);
  } else if (chat) {
    cleanup = await chatPage(main, chat[1] ? decodeURIComponent(chat[1]) : null);
  } else {
    cleanup = await showsPage(main);
  }
  // A newer route started while this one loaded: this one's socket and timers go at once.
  if (run !== rendering) {
    if (cleanup) cleanup();
    return;
  }
  leave = cleanup || (() => {});
  const heading = main.querySelector("h1");
  if (heading && document.activeElement === document.body) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

function header(signedIn) {
  for (const el of document.querySelectorAll("[data-needs]")) {
    el.hidden = (el.dataset.needs === "user") !== Boolean(signedIn);
  }
  document.getElementById("who").textContent = signedIn ? `Signed in as ${signedIn.username}` : "";
}

document.getElementById("sign-out").addEventListener("click", () => {
  session.clear();
  location.hash = "#/";
});

session.onChange((signedIn) => {
  header(signedIn);
  // Signed out (here, in another tab, or the server refused the token) while on a page that
  // needs an account: go where a guest can be.
  if (!signedIn && location.hash === "#/orders") location.hash = "#/signin";
  if (!signedIn && location.hash.startsWith("#/chat")) location.hash = "#/signin";
});

// The Organize link: for organizers (GET /v1/users/me says who is one); when the role cannot
// be read, for anyone signed in, and the server's 403 on creating a show speaks.
async function organizeLink(signedIn) {
  const link = document.getElementById("organize-link");
  if (!link) return;
  link.hidden = true;
  if (!signedIn) return;
  let organizer = true;
  try {
    organizer = Boolean((await get("/v1/users/me")).organizer);
  } catch {
    // unknown: shown
  }
  const now = session.current();
  link.hidden = !(now && now.token === signedIn.token && organizer);
}
session.onChange(organizeLink);

window.addEventListener("hashchange", route);
header(session.current());
organizeLink(session.current());
route();
