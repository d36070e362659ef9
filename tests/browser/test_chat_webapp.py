"""The chat panel (#/chat) in a real browser against the real stack: two fans chatting in two
browser contexts (live messages in order, typing, read receipts, unread badges), presence,
scrolling back through history, going offline and catching up, and a refused send.
Screenshots go to var/test/artifacts/."""

from __future__ import annotations

import json
import uuid
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Fan, Opener, Scene, screenshot

# The server keeps a user online for 10 s after their last socket closes; presence frames
# then travel through the signals topic. Bounded, with room for a loaded machine.
PRESENCE_WAIT_MS = 25_000


def buddy(scene: Scene, who: Fan, other: Fan) -> None:
    response = scene.command("PUT", f"/v1/buddies/{other.username}", who.token, None)
    assert response.status_code == 200, response.text


def direct(scene: Scene, who: Fan, other: Fan) -> str:
    response = scene.command(
        "POST", "/v1/conversations", who.token, {"members": [other.username], "title": None}
    )
    assert response.status_code in (200, 201), response.text
    conversation_id: str = response.json()["conversation_id"]
    return conversation_id


def say(scene: Scene, who: Fan, conversation_id: str, text: str) -> int:
    response = scene.command(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        who.token,
        {"text": text, "client_msg_id": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    seq: int = response.json()["seq"]
    return seq


def messages(page: Page) -> Locator:
    return page.locator("ol.chat-log li.message:not(.pending) .text")


def conversation_item(page: Page, conversation_id: str) -> Locator:
    return page.locator(f'li.conv[data-conversation="{conversation_id}"]')


def open_conversation(page: Page, conversation_id: str) -> None:
    conversation_item(page, conversation_id).get_by_role("button").click()
    expect(page.locator("ol.chat-log")).to_be_visible()


def test_two_fans_chat_live_with_typing_receipts_and_unread_badges(
    open_page: Opener, scene: Scene
) -> None:
    alice, bob = scene.fan(), scene.fan()
    buddy(scene, alice, bob)
    buddy(scene, bob, alice)
    b = open_page(bob, "/#/chat")
    expect(b.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    expect(b.locator(f'li.buddy[data-user="{alice.username}"]')).to_be_visible()
    a = open_page(alice, "/")
    a.get_by_role("link", name="Chat").click()
    expect(a.get_by_role("heading", name="Chat", exact=True)).to_be_visible()

    # Alice starts the conversation from her buddy list; it shows up on Bob's list live.
    a.get_by_role("button", name=f"Message {bob.username}").click()
    expect(a.locator(".conversation h2")).to_have_text(bob.username)
    box = a.get_by_label("Message", exact=True)
    box.fill("Hi Bob!")
    box.press("Enter")
    box.fill("Are you coming tonight?")
    a.get_by_role("button", name="Send", exact=True).click()
    expect(messages(a)).to_have_text(["Hi Bob!", "Are you coming tonight?"])
    expect(a.locator("li.message.pending")).to_have_count(0)

    # Bob has not opened it: two unread.
    listed = b.locator("li.conv", has_text=alice.username)
    expect(listed.locator(".badge")).to_have_text("2")
    expect(listed.locator(".badge")).to_have_attribute("aria-label", "2 unread")
    expect(listed.locator(".preview")).to_contain_text("Are you coming tonight?")
    screenshot(b, "chat-unread-badge")

    # Opening it shows both in order, clears the badge, and Alice sees it read.
    listed.get_by_role("button").click()
    expect(messages(b)).to_have_text(["Hi Bob!", "Are you coming tonight?"])
    expect(listed.locator(".badge")).to_have_count(0)
    expect(a.locator("li.message[data-seq='2'] .receipt")).to_have_text(f"Read by {bob.username}")

    # Alice types: Bob sees it; when she sends, the line goes and the message is there.
    box.press_sequentially("Doors open at eight", delay=120)
    expect(b.locator(".typing")).to_have_text(f"{alice.username} is typing…")
    screenshot(b, "chat-typing")
    box.press("Enter")
    expect(messages(b)).to_have_text(["Hi Bob!", "Are you coming tonight?", "Doors open at eight"])
    expect(b.locator(".typing")).to_have_text("")

    # Bob answers; both see the same conversation, in seq order, with no repeats.
    reply = b.get_by_label("Message", exact=True)
    reply.fill("Yes! See you there <b>not bold</b>")
    reply.press("Enter")
    everything = [
        "Hi Bob!",
        "Are you coming tonight?",
        "Doors open at eight",
        "Yes! See you there <b>not bold</b>",
    ]
    expect(messages(a)).to_have_text(everything)
    expect(messages(b)).to_have_text(everything)
    seqs = b.locator("ol.chat-log li.message").evaluate_all(
        "items => items.map((li) => Number(li.dataset.seq))"
    )
    assert seqs == [1, 2, 3, 4]
    # Text from other users is text, never markup.
    assert a.locator("ol.chat-log b").count() == 0
    # Receipts sit under the newest of your messages the other has read (replying counts).
    expect(b.locator("li.message[data-seq='4'] .receipt")).to_have_text(f"Read by {alice.username}")
    expect(a.locator("li.message[data-seq='3'] .receipt")).to_have_text(f"Read by {bob.username}")
    expect(a.locator("li.message .receipt")).to_have_count(1)
    screenshot(b, "chat-panel")
    screenshot(a, "chat-panel-sender")


def test_buddies_presence_goes_online_and_offline(open_page: Opener, scene: Scene) -> None:
    alice, bob = scene.fan(), scene.fan()
    buddy(scene, bob, alice)
    b = open_page(bob, "/#/chat")
    entry = b.locator(f'li.buddy[data-user="{alice.username}"]')
    expect(entry).to_have_attribute("data-presence", "offline")
    expect(entry.locator(".presence")).to_have_text("offline")

    a = open_page(alice, "/#/chat")
    expect(a.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    expect(entry).to_have_attribute("data-presence", "online", timeout=PRESENCE_WAIT_MS)
    expect(entry.locator(".presence")).to_have_text("online")
    screenshot(b, "chat-presence-online")

    a.close()
    expect(entry).to_have_attribute("data-presence", "offline", timeout=PRESENCE_WAIT_MS)
    expect(entry.locator(".presence")).to_have_text("offline")

    # Adding a buddy in the panel shows them with their presence.
    carol = scene.fan()
    b.get_by_label("Add a buddy by username").fill(carol.username)
    b.get_by_role("button", name="Add buddy").click()
    expect(b.locator(f'li.buddy[data-user="{carol.username}"]')).to_have_attribute(
        "data-presence", "offline"
    )
    b.get_by_label("Add a buddy by username").fill("nobody_by_that_name_x")
    b.get_by_role("button", name="Add buddy").click()
    expect(b.locator("form.add-buddy [role=alert]")).to_be_visible()


def test_scrolling_back_through_history(open_page: Opener, scene: Scene) -> None:
    alice, bob = scene.fan(), scene.fan()
    conversation_id = direct(scene, alice, bob)
    texts = [f"history {i:03d}" for i in range(1, 121)]
    for i, text in enumerate(texts, start=1):
        assert say(scene, alice if i % 2 else bob, conversation_id, text) == i

    b = open_page(bob, "/#/chat")
    open_conversation(b, conversation_id)
    log = b.locator("ol.chat-log")
    # The newest page first, at the bottom.
    expect(messages(b)).to_have_count(50)
    expect(messages(b).last).to_have_text("history 120")
    expect(messages(b).first).to_have_text("history 071")
    expect(messages(b).last).to_be_in_viewport()

    # Scrolling to the top loads the page before it, keeping the view where it was.
    log.evaluate("el => { el.scrollTop = 0; }")
    expect(messages(b)).to_have_count(100)
    expect(messages(b).first).to_have_text("history 021")
    # The button does the same without scrolling.
    b.get_by_role("button", name="Load older messages").click()
    expect(messages(b)).to_have_count(120)
    expect(b.get_by_role("button", name="Load older messages")).to_be_hidden()
    expect(messages(b)).to_have_text(texts)
    log.evaluate("el => { el.scrollTop = 0; }")
    expect(messages(b).first).to_be_in_viewport()
    expect(messages(b).first).to_have_text("history 001")
    screenshot(b, "chat-history-oldest")


def test_offline_and_back_catches_up_in_order(open_page: Opener, scene: Scene) -> None:
    alice, bob = scene.fan(), scene.fan()
    conversation_id = direct(scene, alice, bob)
    say(scene, alice, conversation_id, "before the drop")
    b = open_page(bob, "/#/chat")
    sent: list[dict[str, Any]] = []

    def watch(ws: Any) -> None:
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))

    b.on("websocket", watch)
    open_conversation(b, conversation_id)
    expect(messages(b)).to_have_text(["before the drop"])
    b.evaluate("window.__sameDocument = true")

    b.context.set_offline(True)
    banner = b.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_have_attribute("data-kind", "offline")
    for text in ("one", "two", "three"):
        say(scene, alice, conversation_id, f"while away: {text}")
    assert messages(b).count() == 1
    # What Bob sends meanwhile waits, pending, and goes when the socket is back.
    box = b.get_by_label("Message", exact=True)
    box.fill("sent while offline")
    box.press("Enter")
    expect(b.locator("li.message.pending")).to_contain_text("Sending…")
    screenshot(b, "chat-offline")

    b.context.set_offline(False)
    expect(messages(b)).to_have_text(
        [
            "before the drop",
            "while away: one",
            "while away: two",
            "while away: three",
            "sent while offline",
        ]
    )
    expect(b.locator("li.message.pending")).to_have_count(0)
    expect(banner).to_be_hidden()
    assert b.evaluate("window.__sameDocument === true"), "the page was reloaded"
    # It came back by resuming from its cursor, not by reloading the history.
    resumes = [frame for frame in sent if frame.get("type") == "resume"]
    assert resumes, sent
    assert resumes[-1]["cursors"].get(conversation_id) == 1, resumes
    seqs = b.locator("ol.chat-log li.message").evaluate_all(
        "items => items.map((li) => Number(li.dataset.seq))"
    )
    assert seqs == [1, 2, 3, 4, 5]
    history = scene.http.get(
        f"/v1/conversations/{conversation_id}/messages",
        headers={"Authorization": f"Bearer {alice.token}"},
    ).json()["messages"]
    assert [m["text"] for m in history].count("sent while offline") == 1
    screenshot(b, "chat-back-online")


def test_a_refused_send_shows_the_servers_reason(open_page: Opener, scene: Scene) -> None:
    alice, bob = scene.fan(), scene.fan()
    conversation_id = direct(scene, alice, bob)
    blocked = scene.command("PUT", f"/v1/blocks/{alice.username}", bob.token, None)
    assert blocked.status_code == 200, blocked.text
    a = open_page(alice, "/#/chat")
    open_conversation(a, conversation_id)
    box = a.get_by_label("Message", exact=True)
    box.fill("hello?")
    box.press("Enter")
    failed = a.locator("li.message.pending.failed")
    expect(failed).to_contain_text("Not sent")
    expect(a.locator(".conversation [role=alert]")).to_be_visible()
    expect(messages(a)).to_have_count(0)
    screenshot(a, "chat-send-refused")


def test_a_group_started_in_the_panel_reaches_its_members(open_page: Opener, scene: Scene) -> None:
    alice, bob, carol = scene.fan(), scene.fan(), scene.fan()
    b = open_page(bob, "/#/chat")
    expect(b.get_by_role("heading", name="Conversations")).to_be_visible()
    a = open_page(alice, "/#/chat")
    a.get_by_text("New group").click()
    title = f"Crew {uuid.uuid4().hex[:6]}"
    a.get_by_label("Group name").fill(title)
    a.get_by_label("Members (usernames, comma-separated)").fill(f"{bob.username}, {carol.username}")
    a.get_by_role("button", name="Start group").click()
    expect(a.locator(".conversation h2")).to_contain_text(title)
    box = a.get_by_label("Message", exact=True)
    box.fill("hello crew")
    box.press("Enter")
    expect(messages(a)).to_have_text(["hello crew"])

    listed = b.locator("li.conv", has_text=title)
    expect(listed.locator(".badge")).to_have_text("1")
    listed.get_by_role("button").click()
    expect(messages(b)).to_have_text(["hello crew"])
    expect(b.locator("li.message .sender")).to_have_text([alice.username])
    expect(a.locator("li.message[data-seq='1'] .receipt")).to_have_text(f"Read by {bob.username}")
    screenshot(b, "chat-group")


def group(scene: Scene, who: Fan, others: list[Fan], title: str) -> str:
    response = scene.command(
        "POST",
        "/v1/conversations",
        who.token,
        {"members": [o.username for o in others], "title": title},
    )
    assert response.status_code == 201, response.text
    conversation_id: str = response.json()["conversation_id"]
    return conversation_id


def members_of(scene: Scene, who: Fan, conversation_id: str) -> list[str] | None:
    response = scene.http.get("/v1/conversations", headers={"Authorization": f"Bearer {who.token}"})
    assert response.status_code == 200, response.text
    for c in response.json()["conversations"]:
        if c["conversation_id"] == conversation_id:
            found: list[str] = c["members"]
            return found
    return None


def test_a_deep_link_opens_a_group_whose_members_are_added_removed_and_leave(
    open_page: Opener, scene: Scene
) -> None:
    alice, bob, carol, dave = scene.fan(), scene.fan(), scene.fan(), scene.fan()
    title = f"Band {uuid.uuid4().hex[:6]}"
    conversation_id = group(scene, alice, [bob, dave], title)
    assert conversation_id.startswith("grp:")
    c = open_page(carol, "/#/chat")
    expect(c.get_by_role("heading", name="Conversations")).to_be_visible()

    # The link names the conversation: it opens with it, and the address keeps naming it.
    a = open_page(alice, f"/#/chat/{conversation_id}")
    expect(a.locator(".conversation h2")).to_contain_text(title)
    assert a.evaluate("location.hash") == f"#/chat/{conversation_id}"
    a.get_by_text("Members (3)").click()
    a.get_by_label("Add a member by username").fill(carol.username)
    a.get_by_role("button", name="Add", exact=True).click()
    expect(a.get_by_text("Members (4)")).to_be_visible()
    expect(a.locator(f'li.member[data-user="{carol.username}"]')).to_be_visible()
    # Carol's open panel hears of the group live and gets what is said in it.
    say(scene, alice, conversation_id, "welcome carol")
    listed = c.locator("li.conv", has_text=title)
    expect(listed.locator(".badge")).to_have_text("1")

    a.get_by_role("button", name=f"Remove {bob.username}").click()
    expect(a.get_by_text("Members (3)")).to_be_visible()
    expect(a.locator(f'li.member[data-user="{bob.username}"]')).to_have_count(0)
    assert members_of(scene, alice, conversation_id) == sorted(
        [alice.username, carol.username, dave.username]
    )
    # Adding somebody who does not exist is refused with the server's reason, in the panel.
    a.get_by_label("Add a member by username").fill("nobody_" + uuid.uuid4().hex[:8])
    a.get_by_role("button", name="Add", exact=True).click()
    expect(a.locator("details.members [role=alert]")).to_be_visible()
    screenshot(a, "chat-group-members")

    # Carol leaves from her panel: the group is gone from her list and from the address.
    listed.get_by_role("button").click()
    expect(messages(c)).to_have_text(["welcome carol"])
    # Her page never heard that Bob was removed: opening the members reads them again.
    c.locator("details.members summary").click()
    expect(c.get_by_text("Members (3)")).to_be_visible()
    expect(c.locator(f'li.member[data-user="{bob.username}"]')).to_have_count(0)
    c.get_by_role("button", name="Leave the group").click()
    expect(c.locator("li.conv", has_text=title)).to_have_count(0)
    expect(c.locator(".conversation h2")).to_have_text("No conversation open")
    assert c.evaluate("location.hash") == "#/chat"
    assert members_of(scene, alice, conversation_id) == sorted([alice.username, dave.username])
    assert members_of(scene, carol, conversation_id) is None

    # A link to a conversation that is not hers says so, and the panel still works.
    c.goto(f"{c.url.split('#')[0]}#/chat/{conversation_id}")
    expect(c.locator(".conversation [role=alert]")).to_contain_text("not one of yours")
    assert c.evaluate("location.hash") == "#/chat"
