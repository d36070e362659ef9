// Building DOM nodes without a framework: h("p.note", {hidden: true}, "text", child).
// Text always goes in as text nodes, so nothing a user or the API wrote is parsed as markup.

export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function money(cents) {
  return (cents / 100).toLocaleString("en", { style: "currency", currency: "EUR" });
}

export function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? iso
    : date.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
}

// A message area: role=alert for errors so screen readers say them at once.
export function notice(kind, text) {
  return h(`p.notice.${kind}`, { role: kind === "error" ? "alert" : "status" }, text);
}
