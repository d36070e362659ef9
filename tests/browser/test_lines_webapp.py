"""The lines and the organizer's page in a real browser (Debian's Chromium) against the real
stack: joining the line of a sold-out show, the live position, the offer with its countdown
and paying it; a queued show's waiting room, which keeps holding locked until the fan is
admitted; creating a show as an organizer. Screenshots go to var/test/artifacts/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Locator, expect

from tests.browser.conftest import (
    Fan,
    Opener,
    Scene,
    assert_same_page,
    mark_page,
    screenshot,
    wait_live,
)
from tests.e2e.ticketing import PASSWORD, add_organizer, auth, unique

# A waiting room's admission comes by the clock: the test waits for it, bounded.
ADMISSION_WAIT_MS = 60_000


@pytest.fixture(scope="module")
def organizer(scene: Scene) -> str:
    return add_organizer(scene.settings)


def ok(scene: Scene, method: str, path: str, fan: Fan, body: Any = None) -> dict[str, Any]:
    response = scene.command(method, path, fan.token, body)
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_sold_out_show_the_line_moves_live_and_the_offer_is_paid(
    open_page: Opener, scene: Scene
) -> None:
    show_id, _ = scene.show(rows=1, seats_per_row=2)
    holder, first, fan = scene.fan(), scene.fan(), scene.fan()
    held = scene.hold(show_id, holder, ["A-1-1", "A-1-2"])
    # Someone is in the line before the browser's fan.
    joined = ok(scene, "POST", f"/v1/shows/{show_id}/waitlist", first, {"quantity": 1})
    assert joined["position"] == 1, joined

    page = open_page(fan, f"/#/shows/{show_id}")
    wait_live(page)
    line = page.locator("section.line")
    expect(line).to_be_visible()
    expect(line).to_contain_text("Sold out right now")
    line.get_by_label("Places:").fill("1")
    line.get_by_role("button", name="Join the line").click()
    position = line.locator(".position")
    expect(position).to_have_attribute("data-position", "2")
    expect(position).to_contain_text("You are number 2 in the line")
    expect(line.locator(".line-state")).to_have_attribute("aria-live", "polite")
    mine = scene.http.get(f"/v1/shows/{show_id}/waitlist/me", headers=auth(fan.token))
    assert mine.status_code == 200 and mine.json()["position"] == 2, mine.text
    mark_page(page)

    # The fan ahead leaves: the page moves up without reloading.
    ok(scene, "DELETE", f"/v1/shows/{show_id}/waitlist/me", first)
    expect(position).to_have_attribute("data-position", "1")
    expect(position).to_contain_text("You are number 1 in the line")
    screenshot(page, "line-position-1")

    # The holder cancels: the places go to the line, and the page says so with a countdown.
    ok(scene, "DELETE", f"/v1/orders/{held['order_id']}", holder)
    expect(line.locator(".offer")).to_contain_text("Your turn! Places came back for you: A-1-1")
    panel = page.locator(".order")
    expect(panel.get_by_role("heading", name="Your offer from the line")).to_be_visible()
    expect(panel.locator(".status")).to_have_text("held")
    expect(panel.locator(".countdown")).to_contain_text(re.compile(r"Held for (10:[0-3]\d|9:\d\d)"))
    expect(page.locator('svg.seatmap [data-seat="A-1-1"]')).to_have_attribute("data-mine", "true")
    assert_same_page(page)
    screenshot(page, "line-offer")

    panel.get_by_label("Payment token").fill("tok_visa")
    panel.get_by_role("button", name="Pay").click()
    expect(panel.locator(".status")).to_have_text("paid")
    expect(panel.locator(".tickets li")).to_have_count(1)
    expect(page.locator('svg.seatmap [data-seat="A-1-1"]')).to_have_attribute("data-state", "sold")
    order = scene.http.get(f"/v1/orders/{held['order_id']}", headers=auth(holder.token)).json()
    assert order["status"] == "cancelled", order

    # After a reload, the page still knows the line's state: the offer was paid, so the line
    # can be joined again (the other seat went back to the line's nobody, so it is free).
    page.reload()
    wait_live(page)
    expect(page.locator('svg.seatmap [data-seat="A-1-2"]')).to_have_attribute(
        "data-state", "available"
    )
    expect(line.locator(".position")).to_have_count(0)


def test_leaving_the_line(open_page: Opener, scene: Scene) -> None:
    show_id, _ = scene.show(rows=1, seats_per_row=1)
    holder, fan = scene.fan(), scene.fan()
    scene.hold(show_id, holder, ["A-1-1"])
    page = open_page(fan, f"/#/shows/{show_id}")
    wait_live(page)
    line = page.locator("section.line")
    line.get_by_role("button", name="Join the line").click()
    expect(line.locator(".position")).to_have_attribute("data-position", "1")
    # A reload finds the entry again (GET .../waitlist/me) and follows it.
    page.reload()
    expect(line.locator(".position")).to_have_attribute("data-position", "1")
    line.get_by_role("button", name="Leave the line").click()
    expect(line.get_by_role("status")).to_have_text("You left the line.")
    expect(line.get_by_role("button", name="Join the line")).to_be_visible()
    gone = scene.http.get(f"/v1/shows/{show_id}/waitlist/me", headers=auth(fan.token))
    assert gone.status_code == 200 and gone.json()["status"] == "left", gone.text


def queued_show(
    scene: Scene,
    organizer: str,
    name: str,
    opens_at: datetime,
    *,
    rows: int,
    admit_per_minute: int,
    pass_seconds: int,
) -> str:
    """A show of `rows` x 4 seats sold through a waiting room that opens at `opens_at`."""
    body = {
        "name": f"{name} {unique('q')}",
        "starts_at": "2027-06-01T20:00:00Z",
        "hold_seconds": 630,
        "sections": [{"name": "A", "rows": rows, "seats_per_row": 4, "price_cents": 5000}],
        "queue": {
            "opens_at": opens_at.isoformat().replace("+00:00", "Z"),
            "admit_per_minute": admit_per_minute,
            "pass_seconds": pass_seconds,
        },
    }
    created = scene.command("POST", "/v1/shows", scene.sign_in(organizer), body)
    assert created.status_code == 201, created.text
    show_id: str = created.json()["show_id"]
    return show_id


def test_a_queued_show_has_a_waiting_room_until_the_fan_is_admitted(
    open_page: Opener, scene: Scene, organizer: str
) -> None:
    # Opened 30 s ago, one fan a minute: the first joiner is in at once, the second in 30 s.
    opens_at = datetime.now(UTC) - timedelta(seconds=30)
    show_id = queued_show(
        scene, organizer, "Queued Night", opens_at, rows=2, admit_per_minute=1, pass_seconds=600
    )
    first, fan = scene.fan(), scene.fan()
    place = ok(scene, "POST", f"/v1/shows/{show_id}/queue", first)
    assert place["position"] == 1, place

    page = open_page(fan, f"/#/shows/{show_id}")
    wait_live(page)
    room = page.locator("section.room")
    expect(room.get_by_role("heading", name="Waiting room")).to_be_visible()
    main = page.locator("main > .view")
    expect(main).to_have_attribute("data-locked", "true")
    assert page.locator("form.best").evaluate("form => form.inert") is True

    room.get_by_role("button", name="Join the waiting room").click()
    state = room.locator(".room-state")
    expect(state).to_have_attribute("data-status", "waiting")
    expect(state).to_have_attribute("data-position", "2")
    expect(state).to_contain_text("You are number 2 in the queue")
    expect(room.locator(".countdown")).to_contain_text(re.compile(r"Your turn in 0:[0-3]\d"))
    expect(state).to_have_attribute("aria-live", "polite")
    expect(main).to_have_attribute("data-locked", "true")
    screenshot(page, "waiting-room-position")

    # Admitted by the clock: the pass's countdown shows and holding unlocks.
    expect(state).to_have_attribute("data-status", "admitted", timeout=ADMISSION_WAIT_MS)
    expect(room.locator(".countdown")).to_contain_text(re.compile(r"Pass valid for (10:00|9:\d\d)"))
    expect(main).to_have_attribute("data-locked", "false")
    page.get_by_label("Best seats, how many:").fill("1")
    page.get_by_role("button", name="Hold best seats").click()
    expect(page.locator(".order .status")).to_have_text("held")
    screenshot(page, "waiting-room-admitted")


def test_joining_a_waiting_room_before_it_opens_is_early(
    open_page: Opener, scene: Scene, organizer: str
) -> None:
    opens_at = datetime.now(UTC) + timedelta(hours=1)
    show_id = queued_show(
        scene, organizer, "Early Night", opens_at, rows=1, admit_per_minute=600, pass_seconds=900
    )
    fan = scene.fan()
    page = open_page(fan, f"/#/shows/{show_id}")
    wait_live(page)
    room = page.locator("section.room")
    room.get_by_role("button", name="Join the waiting room").click()
    state = room.locator(".room-state")
    expect(state).to_have_attribute("data-status", "early")
    expect(state).to_contain_text("everyone who joined early gets a random place")
    expect(room.locator(".countdown")).to_contain_text(re.compile(r"Opens in (1:00:00|59:\d\d)"))
    expect(page.locator("main > .view")).to_have_attribute("data-locked", "true")
    # A reload finds the place again (GET .../queue/me) rather than offering to join.
    page.reload()
    expect(state).to_have_attribute("data-status", "early")
    expect(room.get_by_role("button", name="Join the waiting room")).to_have_count(0)
    screenshot(page, "waiting-room-early")


def fill_group(row: Locator, values: dict[str, str]) -> None:
    for label, value in values.items():
        row.get_by_label(label, exact=True).fill(value)


def test_the_organizer_creates_a_show_and_opens_it(
    open_page: Opener, scene: Scene, organizer: str
) -> None:
    # A fan sees no Organize link, and creating a show is refused with the server's 403.
    fan = scene.fan()
    as_fan = open_page(fan, "/#/organize")
    expect(as_fan.locator("#who")).to_have_text(f"Signed in as {fan.username}")
    expect(as_fan.locator("#organize-link")).to_be_hidden()
    as_fan.get_by_label("Name", exact=True).fill("Not allowed")
    as_fan.get_by_role("button", name="Create the show").click()
    expect(as_fan.get_by_role("alert")).to_have_text(
        "Only organizers can create shows. Ask for an organizer account."
    )

    page = open_page()
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Username").fill(organizer)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Organize").click()
    expect(page.get_by_role("heading", name="Create a show")).to_be_visible()

    name = f"Organized Night {unique('o')}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Hold time (seconds)").fill("300")
    fill_group(
        page.locator(".group-row").first,
        {"Section": "B", "Rows": "2", "Seats per row": "3", "Price (EUR)": "42.50"},
    )
    page.get_by_role("button", name="Add a zone").click()
    zone = page.locator(".group-row").nth(1)
    create = page.get_by_role("button", name="Create the show")

    # A name used twice is said at the field, before anything is sent.
    fill_group(zone, {"Zone": "B", "Capacity": "5"})
    create.click()
    zone_name = zone.get_by_label("Zone", exact=True)
    expect(zone_name).to_have_attribute("aria-invalid", "true")
    expect(zone.locator(".field-error")).to_have_text(
        "B is used twice: section and zone names must be unique."
    )
    expect(zone_name).to_be_focused()
    expect(page.locator(".messages [role=alert]")).to_contain_text("Some fields need a change")

    # A rule only the server checks: its reason is said at the field it is about.
    fill_group(zone, {"Zone": "PIT"})
    page.get_by_label("Sell through a waiting room (queue)").check()
    per_minute = page.get_by_label("Fans let in per minute")
    per_minute.fill("5000000")
    page.get_by_label("Pass (seconds)").fill("300")
    create.click()
    expect(per_minute).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#queue-rate-error")).to_have_text("Must be from 1 to 1000000.")
    expect(per_minute).to_be_focused()
    expect(zone_name).not_to_have_attribute("aria-invalid", "true")
    screenshot(page, "organizer-field-errors")

    per_minute.fill("120")
    screenshot(page, "organizer-form")
    create.click()

    opened = page.get_by_role("link", name=f"Open {name}")
    expect(opened).to_be_visible()
    expect(page.locator(".field-error")).to_have_count(0)
    expect(per_minute).not_to_have_attribute("aria-invalid", "true")
    opened.click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    wait_live(page)
    expect(page.locator("svg.seatmap rect.seat")).to_have_count(6)
    expect(page.locator('svg.seatmap [data-seat="B-2-3"]')).to_be_visible()
    expect(page.locator(".prices")).to_contain_text("Section B: €42.50")
    expect(page.locator('table.zones tr[data-zone="PIT"]')).to_contain_text("5 of 5")
    expect(page.get_by_role("heading", name="Waiting room")).to_be_visible()
    screenshot(page, "organizer-created-show")

    show_id = page.url.rsplit("/", 1)[1]
    show = scene.http.get(f"/v1/shows/{show_id}").json()
    assert show["hold_seconds"] == 300, show
    assert show["sections"][0]["price_cents"] == 4250, show
    assert show["queue"]["admit_per_minute"] == 120, show
    assert show["queue"]["pass_seconds"] == 300, show
