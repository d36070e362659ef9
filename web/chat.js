// The chat panel (#/chat): buddies with presence, conversations with unread badges, and one
// open conversation with its messages in seq order, a send box, typing, read receipts and
// older pages on demand.
//
// One socket (WS /v1/chat/live) carries everything live. Each conversation keeps a cursor: the
// highest seq this page holds with nothing missing below it (from GET /v1/conversations'
// last_seq at first). The socket's first frame is always `resume` with every cursor, so the
// server replays what came after them and then goes live; a message applies only when its seq
// is cursor + 1, a repeat is ignored, and a gap sends `resume` again from the cursor. After a
// drop it reconnects by itself (0.5 s doubling to 10 s, with jitter; at once when the browser
// is online again) and resumes the same way. Unsent messages keep their client_msg_id and are
// sent again after a reconnect, which the server deduplicates.

import { ApiError, command, get, newKey } from "./api.js";
import { h, notice, when } from "./dom.js";
import * as session from "./session.js";
import { ReconnectingSocket, socketUrl } from "./socket.js";

const TYPING_EVERY_MS = 1000;
const TYPING_SHOWN_MS = 4000;
const PAGE = 50;

function explain(error) {
  if (error instanceof ApiError) return error.message;
  return "Something went wrong. Try again.";
}

// The live socket: resume first, then frames to the page; reconnecting is web/socket.js's.
class ChatSocket extends ReconnectingSocket {
  constructor({ cursors, onFrame, onOpen }) {
    super();
    this.cursors = cursors;
    this.onFrame = onFrame;
    this.onOpen = onOpen;
  }

  url() {
    const signedIn = session.current();
    if (!signedIn) return null;
    return socketUrl(`/v1/chat/live?token=${encodeURIComponent(signedIn.token)}`);
  }

  opened() {
    this.resume();
    this.healthy();
    this.onOpen();
  }

  received(frame) {
    if (frame.type === "error" && frame.code === "unauthorized") {
      this.stop();
      session.clear();
      return;
    }
    this.onFrame(frame);
  }

  closed(event) {
    if (event.code !== 4401) return false;
    this.stop();
    session.clear();
    return true;
  }

  // Every conversation whose cursor is known; one still being looked up is resumed once it is.
  resume(only) {
    const cursors = {};
    for (const [id, cursor] of this.cursors()) {
      if (cursor !== null && (!only || only === id)) cursors[id] = cursor;
    }
    this.send({ type: "resume", cursors });
  }

  send(frame) {
    if (!this.open) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }
}

// The address of the chat panel with `id` open (#/chat/ID), or of the panel alone.
export function chatHash(id) {
  // Ids are "dm:…" and "grp:…": the colon may stay as it is in a fragment, and reads better.
  return id ? `#/chat/${encodeURIComponent(id).replaceAll("%3A", ":")}` : "#/chat";
}

export async function chatPage(main, wanted = null) {
  const signedIn = session.current();
  if (!signedIn) {
    sessionStorage.setItem("boxoffice.return", chatHash(wanted));
    location.hash = "#/signin";
    return () => {};
  }
  const me = signedIn.username;
  main.replaceChildren(h("h1", {}, "Chat"), h("p.loading", {}, "Loading…"));

  const buddies = new Map(); // username -> "online" | "offline"
  const conversations = new Map(); // id -> state
  const presenceSeen = new Map(); // presence frames for users not (yet) buddies
  let openId = null;
  let socket = null;
  const timers = new Set();
  // The open conversation's parts (renderView makes them).
  let log = null;
  let typingLine = null;
  let sendError = null;
  let olderButton = null;
  let input = null;
  let lastTypingSent = 0;

  function stateFor(c) {
    return {
      id: c.conversation_id,
      kind: c.kind,
      title: c.title,
      members: c.members || [],
      cursor: c.last_seq === undefined ? null : c.last_seq,
      lastRead: c.last_read_seq || 0,
      unread: c.unread || 0,
      last: c.last_message || null,
      messages: new Map(), // seq -> message, every one at or below the cursor
      nextBefore: undefined, // undefined: history not loaded yet; null: nothing older
      loading: false,
      readers: new Map(), // other member -> seq they read
      typing: new Map(), // user -> timer
      pending: new Map(), // client_msg_id -> {text, state, error}
    };
  }

  function nameOf(c) {
    if (c.title) return c.title;
    const others = c.members.filter((m) => m !== me);
    return others.length ? others.join(", ") : "Just you";
  }

  // --- The page's parts -------------------------------------------------------------------
  const buddyList = h("ul.buddies", { "aria-label": "Buddies" });
  const buddyError = h("p.notice.error", { role: "alert", hidden: true });
  const buddyInput = h("input", {
    id: "buddy-name",
    name: "buddy",
    autocomplete: "off",
    required: true,
    pattern: "[a-z0-9_]{3,32}",
  });
  const buddyForm = h(
    "form.add-buddy",
    { onsubmit: addBuddy },
    h("label", { for: "buddy-name" }, "Add a buddy by username"),
    h("div.inline", {}, buddyInput, h("button", { type: "submit" }, "Add buddy")),
    buddyError,
  );

  const conversationList = h("ul.conversations", { "aria-label": "Conversations" });
  const groupTitle = h("input", { id: "group-title", name: "title", autocomplete: "off" });
  const groupMembers = h("input", {
    id: "group-members",
    name: "members",
    autocomplete: "off",
    required: true,
  });
  const groupError = h("p.notice.error", { role: "alert", hidden: true });
  const groupForm = h(
    "form.new-group",
    { onsubmit: newGroup },
    h("label", { for: "group-title" }, "Group name"),
    groupTitle,
    h("label", { for: "group-members" }, "Members (usernames, comma-separated)"),
    groupMembers,
    h("button", { type: "submit" }, "Start group"),
    groupError,
  );

  const view = h("section.conversation", { "aria-label": "Conversation" });

  const layout = h(
    "div.chat",
    {},
    h(
      "div.chat-side",
      {},
      h(
        "section.side",
        { "aria-labelledby": "buddies-h" },
        h("h2", { id: "buddies-h" }, "Buddies"),
        buddyList,
        buddyForm,
      ),
      h(
        "section.side",
        { "aria-labelledby": "conversations-h" },
        h("h2", { id: "conversations-h" }, "Conversations"),
        conversationList,
        h("details.group", {}, h("summary", {}, "New group"), groupForm),
      ),
    ),
    view,
  );

  // --- Loading ----------------------------------------------------------------------------
  try {
    const [b, c] = await Promise.all([get("/v1/buddies"), get("/v1/conversations")]);
    for (const buddy of b.buddies) buddies.set(buddy.username, buddy.presence);
    for (const conv of c.conversations) conversations.set(conv.conversation_id, stateFor(conv));
  } catch (error) {
    main.replaceChildren(h("h1", {}, "Chat"), notice("error", explain(error)));
    return () => {};
  }
  main.replaceChildren(h("h1", {}, "Chat"), layout);
  renderBuddies();
  renderConversations();
  renderView();
  if (wanted) {
    if (conversations.has(wanted)) {
      openConversation(wanted);
    } else {
      // Not one of ours (any more), or a mistyped link: say so, and drop it from the address.
      history.replaceState(null, "", chatHash(null));
      view.prepend(notice("error", "That conversation is not one of yours."));
    }
  }

  socket = new ChatSocket({
    cursors: () => Array.from(conversations.values(), (c) => [c.id, c.cursor]),
    onFrame: receive,
    onOpen: () => {
      for (const c of conversations.values()) c.resumedAt = undefined;
      flushPending();
    },
  }).start();

  const onVisible = () => markRead();
  document.addEventListener("visibilitychange", onVisible);

  // --- Buddies ----------------------------------------------------------------------------
  function renderBuddies() {
    const names = Array.from(buddies.keys()).sort();
    if (!names.length) {
      buddyList.replaceChildren(h("li.empty", {}, "No buddies yet."));
      return;
    }
    buddyList.replaceChildren(
      ...names.map((name) => {
        const presence = buddies.get(name);
        return h(
          "li.buddy",
          { dataset: { user: name, presence } },
          h("span.dot", { "aria-hidden": "true" }),
          h("span.name", {}, name),
          h("span.presence", {}, presence),
          h(
            "button.secondary.small",
            { type: "button", "aria-label": `Message ${name}`, onclick: () => startDirect(name) },
            "Message",
          ),
        );
      }),
    );
  }

  async function addBuddy(event) {
    event.preventDefault();
    buddyError.hidden = true;
    const name = buddyInput.value.trim().toLowerCase();
    if (!name) return;
    try {
      const added = await command("PUT", `/v1/buddies/${encodeURIComponent(name)}`);
      buddies.set(added.username, presenceSeen.get(added.username) || added.presence || "offline");
      buddyInput.value = "";
      renderBuddies();
    } catch (error) {
      buddyError.textContent = explain(error);
      buddyError.hidden = false;
    }
  }

  // --- Conversations ----------------------------------------------------------------------
  function renderConversations() {
    const list = Array.from(conversations.values()).sort(
      (a, b) => lastTime(b) - lastTime(a) || nameOf(a).localeCompare(nameOf(b)),
    );
    if (!list.length) {
      conversationList.replaceChildren(h("li.empty", {}, "No conversations yet."));
      return;
    }
    conversationList.replaceChildren(
      ...list.map((c) =>
        h(
          "li.conv",
          { dataset: { conversation: c.id } },
          h(
            "button.conv-open",
            {
              type: "button",
              "aria-current": c.id === openId ? "true" : undefined,
              onclick: () => openConversation(c.id),
            },
            h("span.conv-name", {}, nameOf(c)),
            c.kind === "group" ? h("span.kind", {}, " (group)") : null,
            c.unread > 0
              ? h("span.badge", { "aria-label": `${c.unread} unread` }, String(c.unread))
              : null,
            c.last ? h("span.preview", {}, `${c.last.sender}: ${c.last.text}`) : null,
          ),
        ),
      ),
    );
  }

  function lastTime(c) {
    return c.last ? Date.parse(c.last.sent_at) || 0 : 0;
  }

  async function startDirect(name) {
    try {
      const made = await command("POST", "/v1/conversations", { members: [name], title: null });
      await joined(made);
      openConversation(made.conversation_id);
    } catch (error) {
      buddyError.textContent = explain(error);
      buddyError.hidden = false;
    }
  }

  async function newGroup(event) {
    event.preventDefault();
    groupError.hidden = true;
    const members = groupMembers.value
      .split(/[\s,]+/)
      .map((m) => m.trim().toLowerCase())
      .filter(Boolean);
    const title = groupTitle.value.trim() || null;
    try {
      const made = await command("POST", "/v1/conversations", { members, title });
      groupMembers.value = "";
      groupTitle.value = "";
      await joined(made);
      openConversation(made.conversation_id);
    } catch (error) {
      groupError.textContent = explain(error);
      groupError.hidden = false;
    }
  }

  // A conversation we just learnt of (a `conversation` frame, or one we made): its cursor is
  // its last_seq as the list has it, then resume it from there; until then its messages wait
  // for that resume.
  async function joined(c) {
    if (conversations.has(c.conversation_id)) {
      const known = conversations.get(c.conversation_id);
      known.members = c.members || known.members;
      known.title = c.title;
      renderConversations();
      return;
    }
    const state = stateFor({ ...c, last_seq: undefined });
    conversations.set(state.id, state);
    renderConversations();
    let found = null;
    try {
      const { conversations: all } = await get("/v1/conversations");
      found = all.find((x) => x.conversation_id === state.id) || null;
    } catch {
      // Resume from the start: every message is then replayed, none is missed.
    }
    if (found) {
      state.cursor = found.last_seq;
      state.lastRead = found.last_read_seq;
      state.unread = found.unread;
      state.last = found.last_message;
      state.members = found.members;
      state.kind = found.kind;
      state.title = found.title;
    } else {
      state.cursor = 0;
    }
    if (socket) socket.resume(state.id);
    renderConversations();
    if (openId === state.id) {
      renderLog(state);
      if (state.nextBefore === undefined) loadPage(state, 0);
    }
  }

  // --- The open conversation --------------------------------------------------------------

  function openConversation(id) {
    if (openId === id && log) return;
    openId = id;
    // The address names the open conversation, so it can be bookmarked or shared with
    // oneself (no hashchange: the page is already here).
    if (location.hash !== chatHash(id)) history.replaceState(null, "", chatHash(id));
    renderConversations();
    renderView();
    const c = conversations.get(id);
    if (c && c.nextBefore === undefined) loadPage(c, 0);
    markRead();
    if (input) input.focus();
  }

  function renderView() {
    const c = openId && conversations.get(openId);
    if (!c) {
      log = typingLine = sendError = olderButton = input = null;
      view.replaceChildren(
        h("h2", {}, "No conversation open"),
        h("p.help", {}, "Pick a conversation, or message a buddy."),
      );
      return;
    }
    olderButton = h(
      "button.secondary.older",
      { type: "button", onclick: () => loadPage(c, c.nextBefore) },
      "Load older messages",
    );
    olderButton.hidden = !c.nextBefore;
    log = h("ol.chat-log", {
      role: "log",
      "aria-live": "polite",
      "aria-label": `Messages with ${nameOf(c)}`,
      tabindex: "0",
    });
    log.addEventListener("scroll", () => {
      if (log.scrollTop < 30 && c.nextBefore && !c.loading) loadPage(c, c.nextBefore);
    });
    typingLine = h("p.typing", { "aria-live": "polite" });
    sendError = h("p.notice.error", { role: "alert", hidden: true });
    input = h("textarea", {
      id: "message-text",
      name: "text",
      rows: "2",
      maxlength: "100000",
      required: true,
    });
    input.addEventListener("input", () => typed(c));
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    const form = h(
      "form.send",
      { onsubmit: (event) => send(event, c) },
      h("label", { for: "message-text" }, "Message"),
      h("div.inline", {}, input, h("button", { type: "submit" }, "Send")),
    );
    view.replaceChildren(
      h(
        "h2",
        {},
        nameOf(c),
        c.kind === "group" ? h("span.kind.group-members", {}, groupLine(c)) : null,
      ),
      c.kind === "group" ? membersPanel(c, false) : null,
      olderButton,
      log,
      typingLine,
      sendError,
      form,
    );
    if (c.error) {
      sendError.textContent = c.error;
      sendError.hidden = false;
    }
    renderLog(c);
    renderTyping(c);
  }

  function groupLine(c) {
    return ` (group: ${c.members.join(", ")})`;
  }

  // The conversation is no longer ours (we left, or were removed): off the list and the page.
  function gone(c) {
    conversations.delete(c.id);
    if (openId === c.id) {
      openId = null;
      history.replaceState(null, "", chatHash(null));
      renderView();
    }
    renderConversations();
  }

  // A group's members: add one, remove one, or leave (any member may, as the server rules).
  // Nothing live says that others changed the members, so the list is read again on opening.
  function membersPanel(c, open) {
    const error = h("p.notice.error", { role: "alert", hidden: true });
    const field = h("input", {
      id: "member-name",
      name: "username",
      autocomplete: "off",
      required: true,
      pattern: "[a-z0-9_]{3,32}",
    });
    const failed = (err) => {
      error.textContent = explain(err);
      error.hidden = false;
    };
    const changed = (after) => {
      c.members = after.members;
      c.title = after.title;
      renderConversations();
      if (openId !== c.id) return;
      // The panel and the heading only: the send box keeps what is being typed.
      const line = view.querySelector(".group-members");
      if (line) line.textContent = groupLine(c);
      panel.replaceWith(membersPanel(c, true));
    };
    async function refresh() {
      try {
        const { conversations: all } = await get("/v1/conversations");
        const found = all.find((x) => x.conversation_id === c.id);
        if (!found) gone(c);
        else if (found.members.join() !== c.members.join()) changed(found);
      } catch {
        // The list shown stays; adding and removing still answer for themselves.
      }
    }
    const path = `/v1/conversations/${encodeURIComponent(c.id)}/members`;
    async function add(event) {
      event.preventDefault();
      error.hidden = true;
      const name = field.value.trim().toLowerCase();
      if (!name) return;
      try {
        changed(await command("POST", path, { username: name }));
      } catch (err) {
        failed(err);
      }
    }
    async function remove(name) {
      error.hidden = true;
      try {
        const after = await command("DELETE", `${path}/${encodeURIComponent(name)}`);
        if (name === me) gone(c);
        else changed(after);
      } catch (err) {
        failed(err);
      }
    }
    const panel = h(
      "details.members",
      { open, ontoggle: () => panel.open && refresh() },
      h("summary", {}, `Members (${c.members.length})`),
      h(
        "ul.member-list",
        { "aria-label": "Members" },
        ...c.members.map((name) =>
          h(
            "li.member",
            { dataset: { user: name } },
            h("span.name", {}, name === me ? `${name} (you)` : name),
            h(
              "button.secondary.small",
              {
                type: "button",
                "aria-label": name === me ? "Leave the group" : `Remove ${name}`,
                onclick: () => remove(name),
              },
              name === me ? "Leave" : "Remove",
            ),
          ),
        ),
      ),
      h(
        "form.add-member",
        { onsubmit: add },
        h("label", { for: "member-name" }, "Add a member by username"),
        h("div.inline", {}, field, h("button", { type: "submit" }, "Add")),
      ),
      error,
    );
    return panel;
  }

  // The log alone (the send box keeps what is being typed): messages, then unsent ones.
  function renderLog(c) {
    if (!log || openId !== c.id) return;
    log.replaceChildren(
      ...sortedSeqs(c).map((seq) => messageItem(c.messages.get(seq))),
      ...Array.from(c.pending, ([id, p]) => pendingItem(id, p)),
    );
    renderReceipts(c);
    log.scrollTop = log.scrollHeight;
  }

  function sortedSeqs(c) {
    return Array.from(c.messages.keys()).sort((a, b) => a - b);
  }

  function messageItem(m) {
    const mine = m.sender === me;
    return h(
      `li.message${mine ? ".mine" : ""}`,
      { dataset: { seq: String(m.seq) } },
      h("span.sender", {}, mine ? "You" : m.sender),
      h("span.text", {}, m.text),
      h("time", { datetime: m.sent_at }, when(m.sent_at)),
    );
  }

  function pendingItem(id, p) {
    return h(
      `li.message.mine.pending${p.error ? ".failed" : ""}`,
      { dataset: { client: id } },
      h("span.sender", {}, "You"),
      h("span.text", {}, p.text),
      h("span.state", {}, p.error ? `Not sent: ${p.error}` : p.acked ? "Sent" : "Sending…"),
    );
  }

  function atBottom() {
    return !log || log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  }

  // A page of history (newest first from the server) merged in; the cursor moves past any
  // newer messages it brought (the socket's copies of those are then repeats).
  async function loadPage(c, before) {
    // before 0 is the newest page; null means there is nothing older. Until its cursor is
    // known the conversation waits for joined() to load it.
    if (c.loading || before === null || before === undefined || c.cursor === null) return;
    c.loading = true;
    if (olderButton && openId === c.id) olderButton.disabled = true;
    try {
      const query = before ? `?before=${before}&limit=${PAGE}` : `?limit=${PAGE}`;
      const page = await get(`/v1/conversations/${encodeURIComponent(c.id)}/messages${query}`);
      const fresh = [];
      if (c.cursor !== null) {
        const bySeq = new Map(page.messages.map((m) => [m.seq, m]));
        // What is at or below the cursor fills in history; what is newer counts only while it
        // follows on from the cursor with nothing missing.
        for (const m of page.messages) {
          if (m.seq <= c.cursor && !c.messages.has(m.seq)) fresh.push(m);
        }
        while (bySeq.has(c.cursor + 1)) {
          c.cursor += 1;
          fresh.push(bySeq.get(c.cursor));
          c.last = bySeq.get(c.cursor);
        }
        for (const m of fresh) c.messages.set(m.seq, m);
      }
      if (before || c.nextBefore === undefined) c.nextBefore = page.next_before;
      if (openId === c.id && log) {
        if (before) {
          const height = log.scrollHeight;
          const top = log.scrollTop;
          const older = fresh.sort((a, b) => a.seq - b.seq);
          log.prepend(...older.map(messageItem));
          log.scrollTop = top + (log.scrollHeight - height);
        } else {
          renderLog(c);
        }
      }
      markRead();
    } catch (error) {
      if (openId === c.id && sendError) {
        sendError.textContent = explain(error);
        sendError.hidden = false;
      }
    } finally {
      c.loading = false;
      if (olderButton && openId === c.id) {
        olderButton.disabled = false;
        olderButton.hidden = !c.nextBefore;
      }
    }
  }

  function send(event, c) {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    const id = newKey();
    c.pending.set(id, { text, acked: false, error: null });
    input.value = "";
    sendError.hidden = true;
    c.error = null;
    if (log) {
      log.append(pendingItem(id, c.pending.get(id)));
      log.scrollTop = log.scrollHeight;
    }
    // Not connected: it goes when the socket is back (flushPending).
    socket.send({ type: "send", conversation_id: c.id, text, client_msg_id: id });
  }

  function flushPending() {
    for (const c of conversations.values()) {
      for (const [id, p] of c.pending) {
        if (p.error) continue;
        socket.send({ type: "send", conversation_id: c.id, text: p.text, client_msg_id: id });
      }
    }
  }

  function typed(c) {
    const now = Date.now();
    if (now - lastTypingSent < TYPING_EVERY_MS || !input.value) return;
    if (socket.send({ type: "typing", conversation_id: c.id })) lastTypingSent = now;
  }

  function renderTyping(c) {
    if (!typingLine || openId !== c.id) return;
    const who = Array.from(c.typing.keys());
    typingLine.textContent = !who.length
      ? ""
      : who.length === 1
        ? `${who[0]} is typing…`
        : `${who.join(", ")} are typing…`;
  }

  function renderReceipts(c) {
    if (!log || openId !== c.id) return;
    for (const old of log.querySelectorAll(".receipt")) old.remove();
    // Each reader under the newest of my messages they have read.
    const mine = sortedSeqs(c).filter((seq) => c.messages.get(seq).sender === me);
    const bySeq = new Map();
    for (const [user, seq] of c.readers) {
      const at = mine.filter((s) => s <= seq).pop();
      if (at === undefined) continue;
      if (!bySeq.has(at)) bySeq.set(at, []);
      bySeq.get(at).push(user);
    }
    for (const [seq, users] of bySeq) {
      const item = log.querySelector(`li.message[data-seq="${seq}"]`);
      if (item) item.append(h("span.receipt", {}, `Read by ${users.sort().join(", ")}`));
    }
  }

  // Read up to the newest message shown, when the page is on screen.
  function markRead() {
    const c = openId && conversations.get(openId);
    if (!c || c.cursor === null || document.visibilityState === "hidden") return;
    if (c.cursor > c.lastRead && c.messages.has(c.cursor)) {
      if (socket && socket.send({ type: "read", conversation_id: c.id, seq: c.cursor })) {
        c.lastRead = c.cursor;
      }
    }
    if (c.unread) {
      c.unread = 0;
      renderConversations();
    }
  }

  // --- Frames from the server -------------------------------------------------------------
  function receive(frame) {
    switch (frame.type) {
      case "message":
        return onMessage(frame);
      case "ack":
        return onAck(frame);
      case "typing":
        return onTyping(frame);
      case "read":
        return onRead(frame);
      case "presence":
        presenceSeen.set(frame.user, frame.presence);
        if (buddies.has(frame.user)) {
          buddies.set(frame.user, frame.presence);
          renderBuddies();
        }
        return undefined;
      case "conversation":
        joined(frame);
        return undefined;
      case "error":
        return onError(frame);
      default:
        return undefined;
    }
  }

  function onMessage(m) {
    const c = conversations.get(m.conversation_id);
    if (!c) {
      // A conversation we have not heard of yet: learn it (its cursor comes from the list).
      joined({ conversation_id: m.conversation_id, kind: "direct", members: [], title: null });
      return;
    }
    if (c.cursor === null || m.seq <= c.cursor) return; // waiting for its resume, or a repeat
    if (m.seq !== c.cursor + 1) {
      // A gap: ask again from where we are (once per cursor: frames already on their way
      // would otherwise ask again and again).
      if (c.resumedAt !== c.cursor) {
        c.resumedAt = c.cursor;
        socket.resume(c.id);
      }
      return;
    }
    c.cursor = m.seq;
    const message = {
      seq: m.seq,
      sender: m.sender,
      text: m.text,
      sent_at: m.sent_at,
      client_msg_id: m.client_msg_id,
      conversation_id: m.conversation_id,
    };
    c.messages.set(m.seq, message);
    c.last = message;
    if (c.typing.has(m.sender)) {
      clearTimeout(c.typing.get(m.sender));
      c.typing.delete(m.sender);
      renderTyping(c);
    }
    const ownPending = m.sender === me && c.pending.has(m.client_msg_id);
    if (ownPending) c.pending.delete(m.client_msg_id);
    // Sending moves the sender's read marker (no `read` frame says so).
    if (m.sender === me) {
      c.lastRead = Math.max(c.lastRead, m.seq);
    } else {
      c.readers.set(m.sender, Math.max(c.readers.get(m.sender) || 0, m.seq));
      if (openId !== c.id || document.visibilityState === "hidden") c.unread += 1;
    }
    if (openId === c.id && log) {
      const stick = atBottom();
      if (ownPending) {
        const item = log.querySelector(`li.pending[data-client="${CSS.escape(m.client_msg_id)}"]`);
        if (item) item.remove();
      }
      const firstPending = log.querySelector("li.pending");
      log.insertBefore(messageItem(message), firstPending);
      renderReceipts(c);
      if (stick || m.sender === me) log.scrollTop = log.scrollHeight;
      markRead();
    }
    renderConversations();
  }

  function onAck(frame) {
    const c = conversations.get(frame.conversation_id);
    if (!c || !c.pending.has(frame.client_msg_id)) return;
    const p = c.pending.get(frame.client_msg_id);
    p.acked = true;
    if (c.cursor !== null && frame.seq <= c.cursor) {
      // The message itself came first (a repeat of an earlier send): nothing is pending.
      c.pending.delete(frame.client_msg_id);
    }
    refreshPending(c, frame.client_msg_id);
  }

  function refreshPending(c, id) {
    if (!log || openId !== c.id) return;
    const item = log.querySelector(`li.pending[data-client="${CSS.escape(id)}"]`);
    if (!item) return;
    if (c.pending.has(id)) item.replaceWith(pendingItem(id, c.pending.get(id)));
    else item.remove();
  }

  function onError(frame) {
    let shown = false;
    if (frame.client_msg_id) {
      for (const c of conversations.values()) {
        const p = c.pending.get(frame.client_msg_id);
        if (!p) continue;
        p.error = frame.message;
        c.error = frame.message;
        refreshPending(c, frame.client_msg_id);
        shown = shown || openId === c.id;
      }
    }
    const here = !frame.conversation_id || frame.conversation_id === openId;
    if (sendError && (shown || (!frame.client_msg_id && here))) {
      sendError.textContent = frame.message || "The chat server refused that.";
      sendError.hidden = false;
    }
  }

  function onTyping(frame) {
    const c = conversations.get(frame.conversation_id);
    if (!c || frame.user === me) return;
    clearTimeout(c.typing.get(frame.user));
    const timer = setTimeout(() => {
      timers.delete(timer);
      c.typing.delete(frame.user);
      renderTyping(c);
    }, TYPING_SHOWN_MS);
    timers.add(timer);
    c.typing.set(frame.user, timer);
    renderTyping(c);
  }

  function onRead(frame) {
    const c = conversations.get(frame.conversation_id);
    if (!c) return;
    if (frame.user === me) {
      // Read here or in another tab.
      c.lastRead = Math.max(c.lastRead, frame.seq);
      if (c.cursor !== null && frame.seq >= c.cursor && c.unread) {
        c.unread = 0;
        renderConversations();
      }
      return;
    }
    c.readers.set(frame.user, Math.max(c.readers.get(frame.user) || 0, frame.seq));
    renderReceipts(c);
  }

  return () => {
    socket.stop();
    document.removeEventListener("visibilitychange", onVisible);
    for (const timer of timers) clearTimeout(timer);
    for (const c of conversations.values()) for (const t of c.typing.values()) clearTimeout(t);
  };
}
