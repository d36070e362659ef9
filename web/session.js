// The signed-in user: the token from POST /v1/sessions, kept in localStorage so a reload or a
// second tab stays signed in. There is no server-side sign-out (tokens are stateless), so
// signing out forgets the token here.

const KEY = "boxoffice.session";
const listeners = new Set();

export function current() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || "null");
    if (!saved || !saved.token) return null;
    if (saved.expires_at && Date.parse(saved.expires_at) <= Date.now()) {
      localStorage.removeItem(KEY);
      return null;
    }
    return saved;
  } catch {
    return null;
  }
}

export function save(username, token, expiresAt) {
  localStorage.setItem(KEY, JSON.stringify({ username, token, expires_at: expiresAt }));
  changed();
}

export function clear() {
  localStorage.removeItem(KEY);
  changed();
}

export function onChange(listener) {
  listeners.add(listener);
}

function changed() {
  for (const listener of listeners) listener(current());
}

// Another tab signed in or out.
window.addEventListener("storage", (event) => {
  if (event.key === KEY) changed();
});
