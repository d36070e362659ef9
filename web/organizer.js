// The organizer's page (#/organize): create a show with its sections, zones, hold time and an
// optional waiting room (POST /v1/shows, organizers only), then a link to the new show.

import { ApiError, command } from "./api.js";
import { h, notice } from "./dom.js";
import { explain } from "./order.js";
import * as session from "./session.js";

const NAME = "[A-Z0-9]{1,8}";
let rowsMade = 0;

// A local date-time input's value as RFC 3339 UTC ("" stays "").
function utc(local) {
  if (!local) return "";
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

// A date-time input's value for a time some minutes from now, in the device's time zone.
function localIn(minutes) {
  const date = new Date(Date.now() + minutes * 60_000);
  date.setSeconds(0, 0);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function field(label, input, help) {
  const id = input.id;
  if (help) input.setAttribute("aria-describedby", `${id}-help`);
  return h(
    "div.field",
    {},
    h("label", { for: id }, label),
    input,
    help ? h("p.help", { id: `${id}-help` }, help) : null,
  );
}

// One row of a repeated group (a section or a zone): labelled inputs and a remove button.
function groupRow(kind, columns, values, onRemove) {
  const n = ++rowsMade;
  const inputs = {};
  const cells = columns.map(([key, label, attrs]) => {
    const id = `${kind}-${key}-${n}`;
    inputs[key] = h("input", { id, name: key, required: true, value: values[key], ...attrs });
    return h("div.field", {}, h("label", { for: id }, label), inputs[key]);
  });
  const remove = h("button.secondary", { type: "button", "aria-label": `Remove this ${kind}` }, "Remove");
  const row = h("div.group-row", { role: "group", "aria-label": `${kind} ${n}` }, cells, remove);
  remove.addEventListener("click", () => onRemove(row));
  return { row, inputs };
}

function euros(input) {
  return Math.round(Number(input.value) * 100);
}

export function organizerPage(main) {
  const messages = h("div.messages", { "aria-live": "polite" });
  if (!session.current()) {
    sessionStorage.setItem("boxoffice.return", location.hash);
    main.replaceChildren(
      h("h1", {}, "Create a show"),
      notice("info", "Sign in as an organizer to create shows."),
      h("p", {}, h("a", { href: "#/signin" }, "Sign in")),
    );
    return;
  }

  const name = h("input", { id: "show-name", required: true, maxlength: 200 });
  const startsAt = h("input", { id: "show-starts", type: "datetime-local", required: true, value: localIn(60 * 24 * 30) });
  const holdSeconds = h("input", { id: "show-hold", type: "number", min: 1, max: 86400, value: 630, required: true });

  const sectionColumns = [
    ["name", "Section", { pattern: NAME, maxlength: 8, autocapitalize: "characters", title: "1 to 8 of A-Z, 0-9" }],
    ["rows", "Rows", { type: "number", min: 1, max: 200000 }],
    ["seats_per_row", "Seats per row", { type: "number", min: 1, max: 200000 }],
    ["price", "Price (EUR)", { type: "number", min: 0, step: "0.01" }],
  ];
  const zoneColumns = [
    ["name", "Zone", { pattern: NAME, maxlength: 8, autocapitalize: "characters", title: "1 to 8 of A-Z, 0-9" }],
    ["capacity", "Capacity", { type: "number", min: 1, max: 200000 }],
    ["price", "Price (EUR)", { type: "number", min: 0, step: "0.01" }],
  ];
  const sections = [];
  const zones = [];
  const sectionList = h("div.group-rows");
  const zoneList = h("div.group-rows");

  function adder(kind, columns, list, rows, defaults) {
    return () => {
      const made = groupRow(kind, columns, defaults(rows.length), (row) => {
        const at = rows.findIndex((r) => r.row === row);
        if (at >= 0) rows.splice(at, 1);
        row.remove();
      });
      rows.push(made);
      list.append(made.row);
      return made;
    };
  }
  const addSection = adder("section", sectionColumns, sectionList, sections, (i) => ({
    name: String.fromCharCode(65 + (i % 26)),
    rows: 10,
    seats_per_row: 20,
    price: "50.00",
  }));
  const addZone = adder("zone", zoneColumns, zoneList, zones, (i) => ({
    name: i ? `FLOOR${i + 1}` : "FLOOR",
    capacity: 100,
    price: "30.00",
  }));
  addSection();

  const queued = h("input", { id: "show-queued", type: "checkbox" });
  const opensAt = h("input", { id: "queue-opens", type: "datetime-local", value: localIn(10) });
  const perMinute = h("input", { id: "queue-rate", type: "number", min: 1, value: 600 });
  const passSeconds = h("input", { id: "queue-pass", type: "number", min: 1, value: 900 });
  const queueFields = h(
    "div.queue-fields",
    { hidden: true },
    field("Opens at", opensAt, "Fans who join before this get a random place."),
    field("Fans let in per minute", perMinute),
    field("Pass (seconds)", passSeconds, "How long an admitted fan may hold and buy."),
  );
  queued.addEventListener("change", () => {
    queueFields.hidden = !queued.checked;
    for (const input of [opensAt, perMinute, passSeconds]) input.required = queued.checked;
  });

  const submit = h("button", { type: "submit" }, "Create the show");
  const form = h(
    "form.organize",
    { "aria-label": "New show" },
    field("Name", name),
    field("Starts at", startsAt, "In your time zone; sent as UTC."),
    field("Hold time (seconds)", holdSeconds, "How long a hold lasts before its seats go back (630 = 10.5 min)."),
    h(
      "fieldset",
      {},
      h("legend", {}, "Sections (assigned seats)"),
      sectionList,
      h("button.secondary", { type: "button", onclick: () => addSection().inputs.name.focus() }, "Add a section"),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Zones (standing, no assigned seat)"),
      zoneList,
      h("button.secondary", { type: "button", onclick: () => addZone().inputs.name.focus() }, "Add a zone"),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Waiting room"),
      h("div.check", {}, queued, h("label", { for: "show-queued" }, "Sell through a waiting room (queue)")),
      queueFields,
    ),
    h("div.actions", {}, submit),
  );

  // --- Errors at their fields ------------------------------------------------------------
  // The input a request field comes from: "sections.1.price_cents" is the second section's
  // price. The server names fields in a 422's problems, and in an invalid_show's reason.
  function inputFor(path) {
    const [top, index, key] = String(path).replace(/^body\.?/, "").split(".");
    const simple = { name, starts_at: startsAt, hold_seconds: holdSeconds };
    if (index === undefined && simple[top]) return simple[top];
    if (top === "queue") {
      return { opens_at: opensAt, admit_per_minute: perMinute, pass_seconds: passSeconds }[index] || null;
    }
    const rows = top === "sections" ? sections : top === "zones" ? zones : null;
    const row = rows && rows[Number(index)];
    if (!row) return null;
    return row.inputs[key === "price_cents" ? "price" : key] || row.inputs.name;
  }

  // The decider's reasons for refusing a show, by the field they are about.
  function reasonInput(reason) {
    const field = reason.match(/^(queue\.[a-z_]+|hold_seconds|starts_at) /);
    if (field) return inputFor(field[1]);
    const area = reason.match(/^(?:section|zone|area name) '?([A-Z0-9]{1,8})'? /);
    if (!area) return null;
    const named = [...sections, ...zones].find(({ inputs }) => inputs.name.value.trim().toUpperCase() === area[1]);
    return named ? named.inputs.name : null;
  }

  function clearMarks() {
    for (const old of form.querySelectorAll(".field-error")) old.remove();
    for (const input of form.querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
      const rest = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.endsWith("-error"));
      if (rest.length) input.setAttribute("aria-describedby", rest.join(" "));
      else input.removeAttribute("aria-describedby");
    }
  }

  // Says `problem` at `input` (labelled for screen readers); false when there is no input.
  function mark(input, problem) {
    if (!input) return false;
    const id = `${input.id}-error`;
    if (document.getElementById(id)) return true;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", [id, input.getAttribute("aria-describedby")].filter(Boolean).join(" "));
    input.closest(".field").append(h("p.field-error", { id }, problem));
    return true;
  }

  // What the browser's own checks cannot see: names used twice, an empty layout.
  function localProblems() {
    const found = [];
    const seen = new Set();
    for (const { inputs } of [...sections, ...zones]) {
      const value = inputs.name.value.trim().toUpperCase();
      if (seen.has(value)) found.push([inputs.name, `${value} is used twice: section and zone names must be unique.`]);
      seen.add(value);
    }
    return found;
  }

  function showProblems(error) {
    const marked = [];
    if (error instanceof ApiError && error.status === 422) {
      for (const p of (error.details && error.details.problems) || []) {
        if (mark(inputFor(p.location), p.problem)) marked.push(inputFor(p.location));
      }
    }
    if (error instanceof ApiError && error.code === "invalid_show") {
      const reason = String((error.details && error.details.reason) || "");
      const input = reasonInput(reason);
      // At its field, "queue.pass_seconds must be 1..86400" needs no field name.
      const said = reason.replace(/^[a-z_.]+ must be (\d+)\.\.(\d+)$/, "must be from $1 to $2");
      if (mark(input, `${said.charAt(0).toUpperCase()}${said.slice(1)}.`)) marked.push(input);
    }
    if (marked.length) marked[0].focus();
    return marked.length;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMarks();
    const local = localProblems();
    if (!sections.length && !zones.length) {
      messages.replaceChildren(notice("error", "Add at least one section or zone."));
      return;
    }
    if (local.length) {
      for (const [input, problem] of local) mark(input, problem);
      local[0][0].focus();
      messages.replaceChildren(notice("error", "Some fields need a change: see the messages below them."));
      return;
    }
    const body = {
      name: name.value.trim(),
      starts_at: utc(startsAt.value),
      hold_seconds: Number(holdSeconds.value),
      sections: sections.map(({ inputs }) => ({
        name: inputs.name.value.trim().toUpperCase(),
        rows: Number(inputs.rows.value),
        seats_per_row: Number(inputs.seats_per_row.value),
        price_cents: euros(inputs.price),
      })),
      zones: zones.map(({ inputs }) => ({
        name: inputs.name.value.trim().toUpperCase(),
        capacity: Number(inputs.capacity.value),
        price_cents: euros(inputs.price),
      })),
    };
    if (queued.checked) {
      body.queue = {
        opens_at: utc(opensAt.value),
        admit_per_minute: Number(perMinute.value),
        pass_seconds: Number(passSeconds.value),
      };
    }
    submit.disabled = true;
    messages.replaceChildren(notice("info", "Creating the show…"));
    try {
      const created = await command("POST", "/v1/shows", body);
      const link = h("a", { href: `#/shows/${encodeURIComponent(created.show_id)}` }, `Open ${body.name}`);
      messages.replaceChildren(notice("ok", `Created "${body.name}".`), h("p.created", {}, link));
      link.focus();
    } catch (error) {
      const atFields = showProblems(error);
      messages.replaceChildren(
        ...(atFields ? [notice("error", "Some fields need a change: see the messages below them.")] : showError(error)),
      );
    } finally {
      submit.disabled = false;
    }
  });

  main.replaceChildren(h("h1", {}, "Create a show"), messages, form);
}

function showError(error) {
  if (!(error instanceof ApiError)) return [notice("error", explain(error))];
  if (error.status === 403) return [notice("error", "Only organizers can create shows. Ask for an organizer account.")];
  const problems = (error.details && error.details.problems) || [];
  if (error.status === 422 && problems.length) {
    return [
      notice("error", "The show is not valid:"),
      h(
        "ul.problems",
        {},
        problems.map((p) => h("li", {}, `${String(p.location).replace(/^body\./, "")}: ${p.problem}`)),
      ),
    ];
  }
  return [notice("error", explain(error))];
}
