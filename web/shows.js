// The show list: every show on sale with its seats available.

import { get } from "./api.js";
import { h, notice, when } from "./dom.js";
import { explain } from "./order.js";
import * as status from "./status.js";

export async function showsPage(main) {
  main.replaceChildren(h("h1", {}, "Shows"), h("p.loading", {}, "Loading…"));
  try {
    const { shows } = await get("/v1/shows", { staleSource: "shows" });
    main.replaceChildren(
      h("h1", {}, "Shows"),
      shows.length
        ? h(
            "ul.shows",
            {},
            shows.map((show) =>
              h(
                "li.show",
                { dataset: { show: show.show_id } },
                h("a", { href: `#/shows/${encodeURIComponent(show.show_id)}` }, show.name),
                h("span.when", {}, when(show.starts_at)),
                h("span.available", {}, `${show.seats_available} of ${show.seats_total} seats available`),
              ),
            ),
          )
        : h("p", {}, "No shows on sale yet."),
    );
  } catch (error) {
    main.replaceChildren(h("h1", {}, "Shows"), notice("error", explain(error)));
  }
  return () => status.forget("shows");
}
