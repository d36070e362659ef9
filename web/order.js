// One order as a panel: what it holds, a countdown to expires_at while it is held, and the
// payment form (the bundled stand-in provider: tokens starting "decline" are declined,
// tokens starting "slow" take a while), cancel, refund.

import { ApiError, command, serverNow } from "./api.js";
import { h, money, notice } from "./dom.js";

export function orderPanel(order, { onChange = () => {}, title = "Your order" } = {}) {
  const root = h("section.order", { "aria-label": title, dataset: { order: order.order_id } });
  let timer = null;
  let busy = false;
  const messages = h("div.messages", { "aria-live": "polite" });

  function say(kind, text) {
    messages.replaceChildren(notice(kind, text));
  }

  function stopTimer() {
    clearInterval(timer);
    timer = null;
  }

  async function act(button, running, work) {
    if (busy) return;
    busy = true;
    const label = button.textContent;
    button.disabled = true;
    button.textContent = running;
    root.setAttribute("aria-busy", "true");
    try {
      await work();
    } catch (error) {
      say("error", explain(error));
      if (error instanceof ApiError && error.code === "hold_expired") {
        order = { ...order, status: "expired" };
        render();
        onChange(order);
      }
    } finally {
      busy = false;
      root.removeAttribute("aria-busy");
      if (button.isConnected) {
        button.disabled = false;
        button.textContent = label;
      }
    }
  }

  function render() {
    stopTimer();
    const seats = order.seats && order.seats.length ? order.seats.join(", ") : "";
    const zone = order.zone ? `${order.zone.quantity} in zone ${order.zone.name}` : "";
    const parts = [
      h("h3", {}, title),
      h(
        "p",
        {},
        h("span.status", { dataset: { status: order.status } }, order.status),
        " · ",
        [seats, zone].filter(Boolean).join("; "),
        " · ",
        money(order.total_cents),
      ),
    ];
    if (order.status === "held") parts.push(heldControls());
    if (order.tickets && order.tickets.length) {
      parts.push(
        h("h4", {}, "Tickets"),
        h(
          "ul.tickets",
          {},
          order.tickets.map((t) =>
            h("li", { dataset: { ticket: t.ticket_id } }, h("strong", {}, t.seat), " ", h("code", {}, t.ticket_id)),
          ),
        ),
      );
    }
    if (order.status === "paid") parts.push(refundControls());
    root.replaceChildren(...parts, messages);
  }

  function heldControls() {
    const clock = h("p.countdown", { role: "timer", "aria-live": "off" });
    const tick = () => {
      const left = Math.max(0, Date.parse(order.expires_at) - serverNow());
      const s = Math.ceil(left / 1000);
      clock.textContent = `Held for ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
      clock.dataset.seconds = String(s);
      if (left <= 0 && !busy) {
        order = { ...order, status: "expired" };
        render();
        say("error", "Your hold has expired and the seats are released. Hold them again to buy.");
        onChange(order);
      }
    };
    tick();
    timer = setInterval(tick, 250);
    const tokenId = `token-${order.order_id}`;
    const token = h("input", {
      id: tokenId,
      name: "payment_token",
      value: "tok_test",
      required: true,
      autocomplete: "off",
      "aria-describedby": `${tokenId}-help`,
    });
    const pay = h("button", { type: "submit" }, "Pay");
    const cancel = h("button.secondary", { type: "button" }, "Cancel hold");
    const form = h(
      "form.pay",
      {},
      h("label", { for: tokenId }, "Payment token"),
      token,
      h(
        "p.help",
        { id: `${tokenId}-help` },
        "Test payments: any token pays, except a token starting with ",
        h("code", {}, "decline"),
        " (the card is declined and your seats stay held) or with ",
        h("code", {}, "slow"),
        " (the payment takes a while to confirm).",
      ),
      h("div.actions", {}, pay, cancel),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const slow = token.value.startsWith("slow");
      say("info", slow ? "Paying… a slow payment can take a while." : "Paying…");
      act(pay, "Paying…", async () => {
        order = await command("POST", `/v1/orders/${encodeURIComponent(order.order_id)}/payment`, { payment_token: token.value });
        render();
        say("ok", "Paid. Your tickets are below and in My orders.");
        onChange(order);
      });
    });
    cancel.addEventListener("click", () =>
      act(cancel, "Cancelling…", async () => {
        order = await command("DELETE", `/v1/orders/${encodeURIComponent(order.order_id)}`);
        render();
        say("ok", "Hold cancelled; the seats are free again.");
        onChange(order);
      }),
    );
    return h("div", {}, clock, form);
  }

  function refundControls() {
    // Two steps instead of confirm(): a dialog blocks the page and some browsers suppress it.
    const refund = h("button.secondary", { type: "button" }, "Refund");
    const sure = h("button.danger", { type: "button", hidden: true }, "Confirm refund");
    refund.addEventListener("click", () => {
      refund.hidden = true;
      sure.hidden = false;
      sure.focus();
    });
    sure.addEventListener("click", () =>
      act(sure, "Refunding…", async () => {
        order = await command("POST", `/v1/orders/${encodeURIComponent(order.order_id)}/refund`);
        render();
        say("ok", "Refunded; the tickets are void and the seats are free again.");
        onChange(order);
      }),
    );
    return h("div.actions", {}, refund, sure);
  }

  render();
  return { element: root, stop: stopTimer };
}

// The contract's error, said for a person.
export function explain(error) {
  if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
  switch (error.code) {
    case "payment_declined":
      return "The payment was declined. Your seats are still held: try another token.";
    case "hold_expired":
      return "The hold ran out before the payment was confirmed. Any charge was refunded.";
    case "seats_unavailable": {
      const seats = (error.details && error.details.unavailable) || [];
      return `Sorry, ${seats.length ? seats.join(", ") : "some seats"} ${seats.length === 1 ? "is" : "are"} no longer available.`;
    }
    case "not_enough_seats":
      return "There are not enough free seats together for that many.";
    case "zone_sold_out":
      return "That zone is sold out (or has fewer places left than you asked for).";
    case "unavailable":
    case "offline":
      return "The box office cannot answer right now. Try again in a few seconds: asking again is safe, nothing is done twice.";
    case "rate_limited":
      return "Too many requests; wait a moment and try again.";
    case "unauthorized":
      return "Your session has ended. Sign in again.";
    default:
      return error.message;
  }
}
