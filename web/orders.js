// My orders, newest first, with their tickets; held ones can be paid or cancelled, paid ones
// refunded.

import { get } from "./api.js";
import { h, notice } from "./dom.js";
import { explain, orderPanel } from "./order.js";
import * as session from "./session.js";

export async function ordersPage(main) {
  if (!session.current()) {
    sessionStorage.setItem("boxoffice.return", "#/orders");
    location.hash = "#/signin";
    return () => {};
  }
  const panels = [];
  main.replaceChildren(h("h1", {}, "My orders"), h("p.loading", {}, "Loading…"));
  try {
    const [{ orders }, { shows }] = await Promise.all([get("/v1/users/me/orders"), get("/v1/shows")]);
    const names = new Map(shows.map((s) => [s.show_id, s.name]));
    const list = h("div.orders");
    for (const order of orders) {
      const panel = orderPanel(order, { title: names.get(order.show_id) || order.show_id });
      panels.push(panel);
      list.append(panel.element);
    }
    main.replaceChildren(
      h("h1", {}, "My orders"),
      orders.length ? list : h("p", {}, "No orders yet. ", h("a", { href: "#/" }, "Find a show")),
    );
  } catch (error) {
    main.replaceChildren(h("h1", {}, "My orders"), notice("error", explain(error)));
  }
  return () => panels.forEach((p) => p.stop());
}
