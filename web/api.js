// The HTTP API as the contract describes it: JSON in and out, the error shape
// {"error": {"code", "message", "details"}}, Bearer tokens, Idempotency-Key on commands.

import * as session from "./session.js";
import * as status from "./status.js";

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

// A command retried with the same key is the same command: the server answers it once.
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Milliseconds to add to Date.now() to get the server's clock, from the Date header: a hold's
// countdown is to the server's expires_at, whatever this device's clock says.
let clockSkewMs = 0;
export function serverNow() {
  return Date.now() + clockSkewMs;
}

const RETRIES = 3;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function call(method, path, { body, key, staleSource } = {}) {
  const headers = { Accept: "application/json" };
  const signedIn = session.current();
  if (signedIn) headers.Authorization = `Bearer ${signedIn.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["Idempotency-Key"] = key;
  // Reads and keyed commands are safe to send again after a 503 (the server was away).
  const retryable = method === "GET" || Boolean(key);
  for (let attempt = 1; ; attempt++) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      status.setNetwork(false);
      if (retryable && attempt < RETRIES && navigator.onLine) {
        await sleep(500 * attempt);
        continue;
      }
      throw new ApiError(0, "offline", "The server cannot be reached. Check your connection.");
    }
    status.setNetwork(true);
    noteClock(response);
    if (staleSource) status.setStale(staleSource, response.headers.get("X-Boxoffice-Stale") === "true");
    if (response.status === 503 && retryable && attempt < RETRIES) {
      const after = Number(response.headers.get("Retry-After") || "1");
      await sleep(Math.min(Math.max(after, 0.2), 5) * 1000);
      continue;
    }
    const data = await response.json().catch(() => null);
    if (response.ok) return data;
    const error = (data && data.error) || {};
    if (response.status === 401 && signedIn) session.clear();
    throw new ApiError(
      response.status,
      error.code || "error",
      error.message || `The server answered ${response.status}.`,
      error.details || {},
    );
  }
}

function noteClock(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(date)) return;
  // The header has whole seconds: only a skew beyond that is worth correcting.
  const skew = date - Date.now();
  clockSkewMs = Math.abs(skew) > 2000 ? skew : 0;
}

export const get = (path, options) => call("GET", path, options);
export const post = (path, body, options = {}) => call("POST", path, { ...options, body });
export const del = (path, options) => call("DELETE", path, options);

// A command that got no answer (503, or no connection) may still be carried out once the
// server is back. Asked again, the same command goes with the same Idempotency-Key, so the
// server answers it once instead of doing it twice (a second hold, a second payment), even
// after a reload of the page (the keys are kept for the tab). Any answer (done, or refused)
// ends that: the next time is a new command with a new key.
const UNANSWERED = "boxoffice.unanswered";
const UNANSWERED_KEPT = 20;

function unanswered() {
  try {
    return new Map(JSON.parse(sessionStorage.getItem(UNANSWERED) || "[]"));
  } catch {
    return new Map();
  }
}

function keepUnanswered(map) {
  try {
    sessionStorage.setItem(UNANSWERED, JSON.stringify(Array.from(map).slice(-UNANSWERED_KEPT)));
  } catch {
    // Storage full or refused: the key lives as long as this call, which still retries.
  }
}

export async function command(method, path, body) {
  const what = `${method} ${path} ${JSON.stringify(body === undefined ? null : body)}`;
  const waiting = unanswered();
  const key = waiting.get(what) || newKey();
  waiting.delete(what);
  waiting.set(what, key);
  keepUnanswered(waiting);
  let answered = true;
  try {
    return await call(method, path, { body, key });
  } catch (error) {
    answered = error instanceof ApiError && error.status !== 503 && error.status !== 0;
    throw error;
  } finally {
    if (answered) {
      const now = unanswered();
      now.delete(what);
      keepUnanswered(now);
    }
  }
}
