"""The web app in a real browser (Debian's Chromium) against the real stack: accounts, the
show list, the live seat map, racing for a seat, paying, my orders, refunds, going offline
and catching up, and the keyboard. Screenshots go to var/test/artifacts/."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from playwright.sync_api import Route, expect

from boxoffice.settings import Settings
from stack.services import Stack
from tests.browser.conftest import (
    ARTIFACTS,
    WAIT_MS,
    Opener,
    Scene,
    assert_same_page,
    mark_page,
    screenshot,
    seat,
    wait_live,
)
from tests.e2e.ticketing import PASSWORD, unique


def test_the_page_and_the_api_share_the_origin_without_shadowing(app_url: str) -> None:
    with httpx.Client(base_url=app_url, timeout=30) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert http.get("/web/app.js").status_code == 200
        missing = http.get("/v1/nonexistent")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        assert set(missing.json()["error"]) == {"code", "message", "details"}
        assert "/" not in http.get("/openapi.json").json()["paths"]


def test_sign_up_sign_in_and_the_show_list(open_page: Opener, scene: Scene) -> None:
    _, show_name = scene.show(rows=3, seats_per_row=4)
    page = open_page()
    expect(page.get_by_role("heading", name="Shows")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    page.get_by_role("link", name="Create an account").click()
    name = unique("web")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#who")).to_have_text(f"Signed in as {name}", timeout=WAIT_MS)
    listed = page.locator("li.show", has_text=show_name)
    expect(listed).to_contain_text("12 of 12 seats available")
    screenshot(page, "signed-up-show-list")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    assert page.evaluate("localStorage.getItem('boxoffice.session')") is None

    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text(f"Signed in as {name}")
    expect(page.locator("li.show", has_text=show_name)).to_be_visible()


def test_a_page_still_loading_never_draws_over_the_page_opened_after_it(
    open_page: Opener, scene: Scene
) -> None:
    # The shows list is held back while the fan goes on to another page (as after signing in,
    # when the list loads and the fan has already clicked Organize): when it comes, the page
    # on screen stays the one the fan opened.
    page = open_page(scene.fan(), "/#/orders")
    expect(page.get_by_role("heading", name="My orders")).to_be_visible()
    held: list[Route] = []

    def hold_back(route: Route) -> None:
        held.append(route)

    page.route("**/v1/shows", hold_back)
    page.evaluate("location.hash = '#/'")
    deadline = time.monotonic() + WAIT_MS / 1000
    while not held:
        assert time.monotonic() < deadline, "the shows list was never asked for"
        page.wait_for_timeout(20)
    page.evaluate("location.hash = '#/organize'")
    expect(page.get_by_role("heading", name="Create a show")).to_be_visible()
    with page.expect_response("**/v1/shows"):
        held[0].continue_()
    page.evaluate("new Promise((done) => setTimeout(done, 200))")  # its rendering, had it any
    expect(page.get_by_role("heading", name="Create a show")).to_be_visible()
    expect(page.get_by_role("heading", name="Shows")).to_have_count(0)
    page.unroute("**/v1/shows")


def test_stale_reads_are_flagged_by_a_banner(open_page: Opener, scene: Scene) -> None:
    # Taking Kafka down belongs to the disruptive tests; here the API's answer is passed
    # through with the header it sends then (X-Boxoffice-Stale: true), to test the page.
    scene.show(rows=2, seats_per_row=2)
    page = open_page()
    expect(page.locator("li.show").first).to_be_visible()
    expect(page.locator("#banner")).to_be_hidden()

    def flagged(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "x-boxoffice-stale": "true"})

    page.route("**/v1/shows", flagged)
    page.reload()
    banner = page.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Showing saved data")
    expect(banner).to_have_attribute("data-kind", "stale")
    screenshot(page, "stale-banner")
    page.unroute("**/v1/shows")
    page.reload()
    expect(page.locator("li.show").first).to_be_visible()
    expect(banner).to_be_hidden()


def test_two_fans_race_for_a_seat_and_the_loser_sees_it_live(
    open_page: Opener, scene: Scene
) -> None:
    show_id, _ = scene.show()
    alice, bob = scene.fan(), scene.fan()
    a = open_page(alice, f"/#/shows/{show_id}")
    b = open_page(bob, f"/#/shows/{show_id}")
    for page in (a, b):
        wait_live(page)
        expect(seat(page, "A-3-4")).to_have_attribute("data-state", "available")
    mark_page(b)

    # Both pick the same seat; Alice holds first.
    seat(b, "A-3-4").click()
    expect(seat(b, "A-3-4")).to_have_attribute("aria-selected", "true")
    seat(a, "A-3-4").click()
    a.get_by_role("button", name="Hold selected seats").click()
    expect(a.locator(".order .status")).to_have_text("held")
    expect(a.locator(".countdown")).to_contain_text(re.compile(r"Held for (10:[0-3]\d|9:\d\d)"))

    # Bob sees it turn held without reloading, and is told it was taken.
    expect(seat(b, "A-3-4")).to_have_attribute("data-state", "held")
    assert_same_page(b)
    expect(b.get_by_role("alert")).to_contain_text("A-3-4 was just taken")
    screenshot(b, "race-loser-sees-held")

    # His hold anyway gets the contract's conflict, said as a message.
    b.get_by_role("button", name="Hold selected seats").click()
    expect(b.get_by_role("alert")).to_have_text("Sorry, A-3-4 is no longer available.")
    expect(b.locator(".order")).to_have_count(0)
    expect(seat(b, "A-3-4")).to_have_attribute("aria-selected", "false")
    expect(b.locator(".summary")).to_have_text("No seats selected.")
    screenshot(a, "race-winner-holds")


def test_pay_with_the_stand_in_then_my_orders_and_refund(open_page: Opener, scene: Scene) -> None:
    show_id, show_name = scene.show()
    fan = scene.fan()
    page = open_page(fan, f"/#/shows/{show_id}")
    wait_live(page)

    page.get_by_label("Best seats, how many:").fill("2")
    page.get_by_role("button", name="Hold best seats").click()
    panel = page.locator(".order")
    expect(panel.locator(".status")).to_have_text("held")
    held = [s for s in ("A-1-4", "A-1-5") if s in (panel.text_content() or "")]
    assert held == ["A-1-4", "A-1-5"], panel.text_content()
    for seat_id in held:
        expect(seat(page, seat_id)).to_have_attribute("data-state", "held")
        expect(seat(page, seat_id)).to_have_attribute("data-mine", "true")
    expect(panel.locator(".help")).to_contain_text("decline")
    expect(panel.locator(".help")).to_contain_text("slow")

    # A declined card keeps the hold.
    panel.get_by_label("Payment token").fill("decline_card")
    panel.get_by_role("button", name="Pay").click()
    expect(panel.get_by_role("alert")).to_contain_text("declined")
    expect(panel.locator(".status")).to_have_text("held")

    panel.get_by_label("Payment token").fill("tok_visa")
    panel.get_by_role("button", name="Pay").click()
    expect(panel.locator(".status")).to_have_text("paid")
    expect(panel.locator(".tickets li")).to_have_count(2)
    for seat_id in held:
        expect(seat(page, seat_id)).to_have_attribute("data-state", "sold")
    screenshot(page, "paid")

    page.get_by_role("link", name="My orders").click()
    order = page.locator(".orders .order").first
    expect(order).to_contain_text(show_name)
    expect(order.locator(".status")).to_have_text("paid")
    expect(order.locator(".tickets li")).to_have_count(2)
    expect(order.locator(".tickets")).to_contain_text("A-1-4")
    screenshot(page, "my-orders")

    order.get_by_role("button", name="Refund").click()
    order.get_by_role("button", name="Confirm refund").click()
    expect(order.locator(".status")).to_have_text("refunded")
    expect(order.locator(".tickets li")).to_have_count(0)
    seatmap = scene.http.get(f"/v1/shows/{show_id}/seatmap").json()
    assert [seatmap["seats"][s] for s in held] == ["available", "available"]


def test_offline_and_back_catches_up_from_its_version(open_page: Opener, scene: Scene) -> None:
    show_id, _ = scene.show()
    other = scene.fan()
    page = open_page(None, f"/#/shows/{show_id}")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    wait_live(page)
    mark_page(page)
    before = int(page.locator(".live-state").get_attribute("data-version") or "0")

    page.context.set_offline(True)
    banner = page.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("offline")
    held = scene.hold(show_id, other, ["A-2-1", "A-2-2", "A-2-3"])
    expect(seat(page, "A-2-1")).to_have_attribute("data-state", "available")
    screenshot(page, "offline-banner")

    page.context.set_offline(False)
    for seat_id in held["seats"]:
        expect(seat(page, seat_id)).to_have_attribute("data-state", "held")
    expect(banner).to_be_hidden()
    assert_same_page(page)
    assert int(page.locator(".live-state").get_attribute("data-version") or "0") > before
    # It resumed from the version it had rather than starting over.
    assert any(f"since={before}" in url for url in sockets), sockets
    screenshot(page, "back-online")


def test_the_seat_map_by_keyboard_on_a_small_screen(open_page: Opener, scene: Scene) -> None:
    show_id, _ = scene.show()
    page = open_page(None, f"/#/shows/{show_id}", width=375, height=740)
    wait_live(page)
    seatmap = page.locator("svg.seatmap")
    expect(seatmap).to_have_attribute("role", "listbox")
    expect(seatmap).to_have_attribute("aria-label", re.compile(r"48 seats"))

    seatmap.focus()
    expect(seatmap).to_have_attribute("data-cursor", "A-1-1")
    for key in ("ArrowRight", "ArrowRight", "ArrowDown"):
        page.keyboard.press(key)
    expect(seatmap).to_have_attribute("data-cursor", "A-2-3")
    expect(seatmap).to_have_attribute("aria-activedescendant", "seat-A-2-3")
    expect(seat(page, "A-2-3")).to_have_attribute(
        "aria-label", "Section A, row 2, seat 3: available"
    )
    page.keyboard.press("Enter")
    expect(seat(page, "A-2-3")).to_have_attribute("aria-selected", "true")
    expect(page.locator(".summary")).to_contain_text("Selected 1: A-2-3")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press(" ")
    expect(page.locator(".summary")).to_contain_text("Selected 2: A-2-3, A-2-2")
    page.keyboard.press("Enter")
    expect(seat(page, "A-2-2")).to_have_attribute("aria-selected", "false")

    # Usable 375 px wide: nothing pushes the page sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "keyboard-375px")


def test_a_20000_seat_map_paints_and_deltas_touch_only_their_seats(
    open_page: Opener, scene: Scene
) -> None:
    show_id, _ = scene.show(rows=100, seats_per_row=200)
    other = scene.fan()
    # A first viewer makes the API load the show's live map, as for any show people watch;
    # the measured one opens the page in a browser context of its own.
    wait_live(open_page(None, f"/#/shows/{show_id}"))
    page = open_page(None, f"/#/shows/{show_id}")
    # Nothing else runs in the page until the map has painted: Playwright's own locators
    # over 20,000 elements would take the page's main thread and be measured too.
    page.wait_for_function(
        "() => performance.getEntriesByName('seatmap-painted').length > 0", polling=200
    )
    assert page.evaluate("document.querySelectorAll('svg.seatmap rect.seat').length") == 20_000
    marks = page.evaluate(
        """() => Object.fromEntries(performance.getEntriesByType('mark')
                                       .map((m) => [m.name, Math.round(m.startTime)]))"""
    )
    screenshot(page, "seatmap-20000")

    # Every change to a seat element from here on is recorded.
    page.evaluate(
        """() => {
            window.__touched = new Set();
            window.__added = 0;
            new MutationObserver((records) => {
                for (const r of records) {
                    if (r.type === 'childList') window.__added += r.addedNodes.length;
                    else if (r.target.dataset.seat) window.__touched.add(r.target.dataset.seat);
                }
            }).observe(document.querySelector('svg.seatmap g.seats'),
                       {subtree: true, childList: true, attributes: true});
        }"""
    )
    held = scene.hold(show_id, other, ["A-50-100", "A-50-101", "A-50-102"])
    for seat_id in held["seats"]:
        expect(seat(page, seat_id)).to_have_attribute("data-state", "held")
    touched = page.evaluate("[...window.__touched].sort()")
    assert touched == sorted(held["seats"]), touched
    assert page.evaluate("window.__added") == 0
    # From the show page's start (show read, 20,000 seats drawn, socket opened, snapshot
    # applied) to the frame that painted them.
    # Speed is a benchmark's figure, not a test's verdict (a loaded CI machine would make it
    # flaky): it is reported here and in var/test/artifacts/, and recorded in BENCHMARKS.md.
    first_paint_ms = marks["seatmap-painted"] - marks["show-page-start"]
    assert first_paint_ms > 0, marks
    print(f"20,000-seat map: first paint {first_paint_ms} ms; marks {marks}")
    (ARTIFACTS / "seatmap-20000-paint.json").write_text(
        json.dumps({"first_paint_ms": first_paint_ms, "marks": marks})
    )


@pytest.mark.disruptive
def test_with_kafka_down_the_page_serves_the_snapshot_flagged_and_a_retried_hold_is_one(
    open_page: Opener, scene: Scene, stack: Stack, settings: Settings
) -> None:
    # The real outage (the stale banner's own test above fakes the header): Kafka stops, the
    # page says its data is saved data and holding fails with a reason; when Kafka is back,
    # the same hold asked again is answered once, whether or not the first got through.
    show_id, _ = scene.show(rows=2, seats_per_row=4)
    scene.hold(show_id, scene.fan(), ["A-1-1"])
    time.sleep(settings.snapshot_every_s + 1)  # the views snapshot the map with that hold
    fan = scene.fan()
    page = open_page(fan, f"/#/shows/{show_id}")
    wait_live(page)
    expect(seat(page, "A-1-1")).to_have_attribute("data-state", "held")
    banner = page.locator("#banner")
    expect(banner).to_be_hidden()

    assert stack.kafka.stop()
    try:
        time.sleep(3)  # the API notices within a second or two
        seat(page, "A-1-2").click()
        page.get_by_role("button", name="Hold selected seats").click()
        expect(page.get_by_role("alert")).to_contain_text("cannot answer right now", timeout=45_000)
        page.reload()
        expect(banner).to_be_visible()
        expect(banner).to_have_attribute("data-kind", "stale")
        expect(banner).to_contain_text("Showing saved data")
        expect(seat(page, "A-1-1")).to_have_attribute("data-state", "held")
        expect(page.locator(".live-state")).to_contain_text("as last saved")
        screenshot(page, "kafka-down")
    finally:
        stack.up(("kafka",), say=lambda _: None)

    # Back: once holds are decided again (another fan's), the page is opened afresh. The hold
    # asked for in the outage may have reached the journal when Kafka returned: then the page
    # shows it as the fan's. If not, the fan asks again, with the same key. Either way it is
    # one order.
    other = scene.fan()
    deadline = time.monotonic() + 120
    while True:
        again = scene.command(
            "POST", f"/v1/shows/{show_id}/holds", other.token, {"seats": ["A-2-4"]}
        )
        if again.status_code == 201 or time.monotonic() > deadline:
            break
    assert again.status_code == 201, again.text
    page.reload()
    wait_live(page)
    expect(page.locator(".order-slot")).to_have_attribute("data-checked", "true")
    panel = page.locator(".order")
    if page.locator(".order .status").count() == 0:
        expect(seat(page, "A-1-2")).to_have_attribute("data-state", "available")
        seat(page, "A-1-2").click()
        page.get_by_role("button", name="Hold selected seats").click()
    expect(panel.locator(".status")).to_have_text("held")
    expect(panel).to_contain_text("A-1-2")
    expect(seat(page, "A-1-2")).to_have_attribute("data-mine", "true")
    orders = scene.http.get("/v1/users/me/orders", headers={"Authorization": f"Bearer {fan.token}"})
    assert orders.status_code == 200, orders.text
    assert [o["seats"] for o in orders.json()["orders"]] == [["A-1-2"]]
    page.reload()
    wait_live(page)
    expect(banner).to_be_hidden()
    expect(page.locator(".live-state")).to_contain_text("live (version")


def test_a_slow_payment_says_so_then_pays(open_page: Opener, scene: Scene) -> None:
    show_id, _ = scene.show(rows=1, seats_per_row=4)
    page = open_page(scene.fan(), f"/#/shows/{show_id}")
    wait_live(page)
    seat(page, "A-1-2").click()
    page.get_by_role("button", name="Hold selected seats").click()
    panel = page.locator(".order")
    expect(panel.locator(".status")).to_have_text("held")
    panel.get_by_label("Payment token").fill("slow_card")
    panel.get_by_role("button", name="Pay").click()
    # The stand-in takes BOXOFFICE_FAKE_PAYMENT_SLOW_S (3 s in the tests): meanwhile the
    # page says it is working on it, and a second click cannot pay twice.
    expect(panel.locator(".messages")).to_contain_text("a slow payment can take a while")
    expect(panel.get_by_role("button", name="Paying…")).to_be_disabled()
    expect(panel).to_have_attribute("aria-busy", "true")
    screenshot(page, "slow-payment")
    expect(panel.locator(".status")).to_have_text("paid")
    expect(panel.locator(".tickets li")).to_have_count(1)
    expect(seat(page, "A-1-2")).to_have_attribute("data-state", "sold")


def test_a_hold_runs_out_on_the_page_and_its_seats_come_back(
    open_page: Opener, scene: Scene
) -> None:
    show_id, _ = scene.show(rows=1, seats_per_row=4, hold_seconds=4)
    watcher = open_page(scene.fan(), f"/#/shows/{show_id}")
    page = open_page(scene.fan(), f"/#/shows/{show_id}")
    for p in (watcher, page):
        wait_live(p)
    seat(page, "A-1-3").click()
    page.get_by_role("button", name="Hold selected seats").click()
    panel = page.locator(".order")
    expect(panel.locator(".status")).to_have_text("held")
    expect(panel.locator(".countdown")).to_contain_text(re.compile(r"Held for 0:0[1-4]"))
    expect(seat(watcher, "A-1-3")).to_have_attribute("data-state", "held")
    # At expires_at the page says the hold ran out, and offers no payment any more.
    expect(panel.locator(".status")).to_have_text("expired")
    expect(panel.get_by_role("alert")).to_contain_text("Your hold has expired")
    expect(panel.get_by_role("button", name="Pay")).to_have_count(0)
    screenshot(page, "hold-expired")
    # The server lets the seat go: both maps see it available again, without a reload.
    for p in (watcher, page):
        expect(seat(p, "A-1-3")).to_have_attribute("data-state", "available", timeout=30_000)
    seatmap = scene.http.get(f"/v1/shows/{show_id}/seatmap").json()
    assert seatmap["seats"]["A-1-3"] == "available"


def test_a_hold_made_elsewhere_shows_as_the_fans_own_on_the_show_page(
    open_page: Opener, scene: Scene
) -> None:
    show_id, _ = scene.show(rows=1, seats_per_row=4)
    fan = scene.fan()
    scene.hold(show_id, fan, ["A-1-1", "A-1-2"])  # another tab, or before a reload
    page = open_page(fan, f"/#/shows/{show_id}")
    wait_live(page)
    panel = page.locator(".order")
    expect(panel.locator(".status")).to_have_text("held")
    expect(panel.locator(".countdown")).to_contain_text("Held for")
    for seat_id in ("A-1-1", "A-1-2"):
        expect(seat(page, seat_id)).to_have_attribute("data-mine", "true")
    expect(seat(page, "A-1-3")).not_to_have_attribute("data-mine", "true")
    # A stranger's page shows the seats held, and no order.
    stranger = open_page(scene.fan(), f"/#/shows/{show_id}")
    wait_live(stranger)
    expect(stranger.locator(".order-slot")).to_have_attribute("data-checked", "true")
    expect(stranger.locator(".order")).to_have_count(0)
    expect(seat(stranger, "A-1-1")).to_have_attribute("data-state", "held")
