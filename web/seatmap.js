// The seat map as SVG. Seats are drawn once, as one markup string (the fastest way to put
// tens of thousands of elements on the page); afterwards a change touches only the seats it
// names, through a Map from seat id to element. A seat's state is its data-state attribute,
// and the stylesheet draws it: available a round green dot, held an amber square with
// diagonal hatching, sold a dark solid square (shape and pattern differ, not colour alone).
//
// Keyboard: the map is one tab stop (role=listbox); arrow keys move a cursor seat by seat
// (aria-activedescendant tells screen readers which), Home/End go to the row's ends,
// PageUp/PageDown ten rows, Enter or Space selects.

const CELL = 12; // one seat's slot in user units
// The seat inside its slot is 10 units square: see rect.seat in style.css.
const GUTTER = 30; // room for row numbers
const TITLE = 20; // a section's name above its rows
const GAP = 16; // between sections
const SVG_NS = "http://www.w3.org/2000/svg";
const PAGE_ROWS = 10;

const STATES = new Set(["available", "held", "sold"]);

export class SeatMap {
  constructor(sections, { onToggle, label }) {
    this.onToggle = onToggle;
    this.seats = new Map(); // seat id -> element
    this.state = new Map(); // seat id -> state
    this.rows = []; // [{section, row, ids: [...]}], top to bottom
    this.where = new Map(); // seat id -> [row index, seat index]
    this.selected = new Set();
    this.cursor = null; // [row index, seat index]
    this.zoom = null;
    this.width = 0;
    this.height = 0;
    this.svg = this.draw(sections, label);
    this.svg.addEventListener("click", (event) => this.clicked(event));
    this.svg.addEventListener("keydown", (event) => this.key(event));
    this.svg.addEventListener("focus", () => {
      if (!this.cursor && this.rows.length) this.moveTo(0, 0);
    });
  }

  draw(sections, label) {
    this.width = GUTTER + Math.max(0, ...sections.map((s) => s.seats_per_row * CELL)) + CELL;
    const parts = [];
    const ids = [];
    let y = 0;
    for (const section of sections) {
      const sectionWidth = section.seats_per_row * CELL;
      const left = GUTTER + (this.width - GUTTER - CELL - sectionWidth) / 2;
      parts.push(
        `<text class="section-name" x="${left}" y="${y + 14}">Section ${escape(section.name)}</text>`,
      );
      y += TITLE;
      for (let row = 1; row <= section.rows; row++) {
        const rowIds = [];
        parts.push(`<text class="row-name" x="${GUTTER - 6}" y="${y + 9}">${row}</text>`);
        for (let seat = 1; seat <= section.seats_per_row; seat++) {
          const id = `${section.name}-${row}-${seat}`;
          const x = left + (seat - 1) * CELL + 1;
          // As little markup as will do (size and the available look come from the
          // stylesheet; role and aria-selected are set on the seats that need them): the
          // parse and the style pass scale with it.
          parts.push(
            `<rect class="seat" data-seat="${id}" data-state="available" x="${x}" y="${y + 1}"/>`,
          );
          this.where.set(id, [this.rows.length, rowIds.length]);
          rowIds.push(id);
          ids.push(id);
        }
        this.rows.push({ section: section.name, row, ids: rowIds });
        y += CELL;
      }
      y += GAP;
    }
    this.height = Math.max(y, CELL);
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "seatmap");
    svg.setAttribute("viewBox", `0 0 ${this.width} ${this.height}`);
    svg.setAttribute("role", "listbox");
    svg.setAttribute("aria-multiselectable", "true");
    svg.setAttribute("aria-label", label);
    svg.setAttribute("tabindex", "0");
    // Hatching for held seats: the second cue besides the colour.
    svg.innerHTML =
      `<defs><pattern id="held-hatch" patternUnits="userSpaceOnUse" width="3" height="3" ` +
      `patternTransform="rotate(45)"><rect width="3" height="3" class="hatch-bg"/>` +
      `<line x1="0" y1="0" x2="0" y2="3" class="hatch-line"/></pattern></defs>` +
      `<g class="seats">${parts.join("")}</g>` +
      `<rect class="cursor" width="${CELL}" height="${CELL}" visibility="hidden"/>`;
    const seatEls = svg.querySelectorAll("rect.seat");
    for (let i = 0; i < seatEls.length; i++) {
      this.seats.set(ids[i], seatEls[i]);
      this.state.set(ids[i], "available");
    }
    this.cursorEl = svg.querySelector("rect.cursor");
    return svg;
  }

  // A snapshot: every seat is named, but only the ones whose state differs are touched.
  setAll(seats) {
    this.apply(seats);
  }

  // A delta (or a snapshot): the named seats only. Returns the selected seats that turned
  // unavailable, so the page can say so.
  apply(seats) {
    const taken = [];
    for (const id in seats) {
      const next = seats[id];
      const el = this.seats.get(id);
      if (!el || !STATES.has(next) || this.state.get(id) === next) continue;
      this.state.set(id, next);
      el.setAttribute("data-state", next);
      if (next !== "available" && this.selected.has(id)) taken.push(id);
      if (this.cursor && this.idAt(...this.cursor) === id) this.describe(el, id);
    }
    return taken;
  }

  stateOf(id) {
    return this.state.get(id);
  }

  markMine(ids, mine) {
    for (const id of ids) {
      const el = this.seats.get(id);
      if (!el) continue;
      if (mine) el.setAttribute("data-mine", "true");
      else el.removeAttribute("data-mine");
    }
  }

  clicked(event) {
    const id = event.target.getAttribute && event.target.getAttribute("data-seat");
    if (!id) return;
    const [r, s] = this.where.get(id);
    this.moveTo(r, s, false);
    this.toggle(id);
  }

  toggle(id) {
    const el = this.seats.get(id);
    const on = !this.selected.has(id);
    // Only a seat that is free can be newly picked; a picked seat can always be let go.
    if (on && this.state.get(id) !== "available") {
      this.onToggle(id, false, `${id} is ${this.state.get(id)}; pick another seat.`);
      return;
    }
    if (on) this.selected.add(id);
    else this.selected.delete(id);
    el.setAttribute("role", "option");
    el.setAttribute("aria-selected", String(on));
    this.describe(el, id);
    this.onToggle(id, on);
  }

  clearSelection() {
    for (const id of this.selected) this.seats.get(id).setAttribute("aria-selected", "false");
    this.selected.clear();
  }

  idAt(r, s) {
    return this.rows[r] && this.rows[r].ids[s];
  }

  key(event) {
    if (!this.rows.length) return;
    const [r, s] = this.cursor || [0, 0];
    const moves = {
      ArrowLeft: [r, s - 1],
      ArrowRight: [r, s + 1],
      ArrowUp: [r - 1, s],
      ArrowDown: [r + 1, s],
      Home: [r, 0],
      End: [r, Infinity],
      PageUp: [r - PAGE_ROWS, s],
      PageDown: [r + PAGE_ROWS, s],
    };
    if (event.key in moves) {
      event.preventDefault();
      this.moveTo(...moves[event.key]);
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.toggle(this.idAt(r, s));
    }
  }

  moveTo(r, s, scroll = true) {
    const row = Math.min(Math.max(r, 0), this.rows.length - 1);
    const seat = Math.min(Math.max(s, 0), this.rows[row].ids.length - 1);
    const previous = this.cursor && this.seats.get(this.idAt(...this.cursor));
    if (previous) {
      previous.removeAttribute("id");
      previous.removeAttribute("aria-label");
    }
    this.cursor = [row, seat];
    const id = this.idAt(row, seat);
    const el = this.seats.get(id);
    // Only the seat under the cursor carries an id and a label: 20,000 labels would cost
    // more than they help, and the listbox announces the active one.
    el.setAttribute("id", `seat-${id}`);
    el.setAttribute("role", "option");
    if (!el.hasAttribute("aria-selected")) el.setAttribute("aria-selected", "false");
    this.describe(el, id);
    this.svg.setAttribute("aria-activedescendant", `seat-${id}`);
    this.svg.setAttribute("data-cursor", id);
    const x = Number(el.getAttribute("x")) - 1;
    const y = Number(el.getAttribute("y")) - 1;
    this.cursorEl.setAttribute("x", x);
    this.cursorEl.setAttribute("y", y);
    this.cursorEl.setAttribute("visibility", "visible");
    if (scroll) this.reveal(x, y);
  }

  describe(el, id) {
    const { section, row } = this.rows[this.where.get(id)[0]];
    const seat = id.slice(id.lastIndexOf("-") + 1);
    const picked = this.selected.has(id) ? ", selected" : "";
    el.setAttribute(
      "aria-label",
      `Section ${section}, row ${row}, seat ${seat}: ${this.state.get(id)}${picked}`,
    );
  }

  // Keep the cursor in sight when the map is zoomed past its box.
  reveal(x, y) {
    const box = this.svg.parentElement;
    if (!box) return;
    const scale = this.svg.getBoundingClientRect().width / this.width;
    const px = x * scale;
    const py = y * scale;
    const margin = CELL * scale * 2;
    if (px < box.scrollLeft + margin) box.scrollLeft = px - margin;
    else if (px > box.scrollLeft + box.clientWidth - margin)
      box.scrollLeft = px - box.clientWidth + margin;
    if (py < box.scrollTop + margin) box.scrollTop = py - margin;
    else if (py > box.scrollTop + box.clientHeight - margin)
      box.scrollTop = py - box.clientHeight + margin;
  }

  // Pixels per seat slot: null fits the map to its box, with seats at least 12 px (a usable
  // tap target, so a big venue opens scrollable rather than as dust) and at most 36 px (a
  // small hall is not blown up to posters).
  setZoom(zoom) {
    const box = this.svg.parentElement;
    const fit = box ? box.clientWidth / this.width : 1;
    this.zoom = zoom;
    const scale = zoom === null ? Math.min(Math.max(fit, 1), 3) : zoom;
    this.svg.style.width = `${Math.round(this.width * scale)}px`;
    this.svg.style.height = `${Math.round(this.height * scale)}px`;
    return scale;
  }
}

function escape(text) {
  return String(text).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
