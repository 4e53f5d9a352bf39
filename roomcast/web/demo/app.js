// roomcast live demo: my rooms, a feed per room with a composer, toasts, who is online
// (with each user's presence: online, away or offline), and my own status.
import { RoomcastClient } from "/websocket/client.js";
import { clock, describe, el, fetchMe, showState, toast } from "/static/ui.js";

const $ = (id) => document.getElementById(id);
const FEED_LIMIT = 200; // entries kept per room

// Message types shown as toasts, and how (the server-pushed types of docs/protocol.md).
const TOASTS = {
  system_notification: { kind: "system", title: "System" },
  notification: { kind: "info", title: "Notification" },
  critical_alert: { kind: "critical", title: "Critical alert", critical: true },
  backend_status: { kind: "info", title: "Backend status" },
  service_recovery: { kind: "system", title: "Service recovered" },
};

const feeds = new Map(); // room -> [entry]
const unread = new Map(); // room -> count
const names = new Map(); // connection_id -> display name, learnt from member lists
let selected = null;
let picked = false; // the user chose a room by hand
let client = null;
let me = null;

function roomLabel(info) {
  if (info.type === "personal") return "Personal";
  return info.name?.replace(/^Group: /, "") || info.room;
}

function sortedRooms() {
  return [...client.rooms.values()].sort((a, b) => {
    if (a.type !== b.type) return a.type === "personal" ? -1 : 1;
    return roomLabel(a).localeCompare(roomLabel(b));
  });
}

function renderRooms() {
  const rooms = sortedRooms();
  $("rooms-empty").hidden = rooms.length > 0;
  $("room-list").replaceChildren(
    ...rooms.map((info) => {
      const count = unread.get(info.room) ?? 0;
      return el(
        "li",
        { dataset: { room: info.room } },
        el(
          "button",
          {
            type: "button",
            class: "room-button",
            "aria-current": info.room === selected ? "true" : "false",
            onclick: () => {
              picked = true;
              select(info.room);
            },
          },
          el("span", { class: "room-name" }, roomLabel(info)),
          count > 0 ? el("span", { class: "unread", "aria-label": `${count} unread` }, String(count)) : null,
          el("span", { class: "room-count", title: "members online" }, `${info.member_count}`),
        ),
      );
    }),
  );
}

function select(room) {
  selected = room;
  unread.delete(room);
  const info = client.rooms.get(room);
  $("room-title").textContent = info ? `${roomLabel(info)} · ${room}` : room;
  $("composer-text").disabled = false;
  $("composer-send").disabled = false;
  $("feed").replaceChildren(...(feeds.get(room) ?? []).map(renderEntry));
  scrollFeed();
  renderRooms();
  refreshMembers();
}

function renderEntry(entry) {
  if (entry.system) {
    return el("li", { class: "system", dataset: entry.recovery ? { recovery: entry.recovery } : undefined }, entry.text);
  }
  return el(
    "li",
    { class: entry.mine ? "mine" : "", dataset: { from: entry.from ?? "" } },
    el("time", { datetime: entry.timestamp ?? "" }, clock(entry.timestamp)),
    el("span", { class: "sender" }, entry.mine ? "me" : entry.sender),
    el("span", { class: "text" }, entry.text),
  );
}

function scrollFeed() {
  const feed = $("feed");
  feed.scrollTop = feed.scrollHeight;
}

function addEntry(room, entry) {
  const list = feeds.get(room) ?? [];
  list.push(entry);
  if (list.length > FEED_LIMIT) list.shift();
  feeds.set(room, list);
  if (room === selected) {
    const feed = $("feed");
    feed.append(renderEntry(entry));
    if (feed.children.length > FEED_LIMIT) feed.firstElementChild.remove();
    scrollFeed();
  } else {
    unread.set(room, (unread.get(room) ?? 0) + 1);
    renderRooms();
  }
}

function onMessage(msg) {
  const data = msg.data ?? {};
  const mine = msg.from != null && msg.from === client.connectionId;
  const sender = names.get(msg.from) ?? data.name ?? (msg.from ? `conn ${String(msg.from).slice(0, 8)}` : "server");
  const entry = { from: msg.from, mine, sender, text: data.text ?? describe(data), timestamp: msg.timestamp };
  if (msg.room) addEntry(msg.room, entry);
  else toast($("toasts"), { kind: "info", title: `Direct message from ${sender}`, text: entry.text });
}

const following = new Map(); // userId -> stop(), for the presence shown in member lists

function presenceOf(userId) {
  return client.presence.get(userId)?.status ?? "online";
}

function follow(userId) {
  if (userId === client.userId || following.has(userId)) return;
  following.set(userId, client.presence.subscribe(userId));
}

function showPresence(userId) {
  for (const li of $("member-list").querySelectorAll("li[data-user]")) {
    if (li.dataset.user === userId) li.dataset.status = li.title = presenceOf(userId);
  }
}

let membersSeq = 0;
async function refreshMembers() {
  const room = selected;
  const seq = ++membersSeq; // only the latest answer may draw
  if (!room || client.state !== "connected" || !client.rooms.has(room)) {
    $("member-list").replaceChildren();
    return;
  }
  let members;
  try {
    members = await client.members(room);
  } catch (error) {
    if (seq === membersSeq) $("member-list").replaceChildren(el("li", { class: "muted" }, `unavailable (${error.code ?? error.message})`));
    return;
  }
  if (seq !== membersSeq) return;
  const byUser = new Map();
  for (const m of members) {
    const name = m.character_name || m.user_id;
    names.set(m.connection_id, name);
    const row = byUser.get(m.user_id) ?? { name, count: 0, me: m.user_id === client.userId };
    row.count += 1;
    byUser.set(m.user_id, row);
  }
  for (const userId of byUser.keys()) follow(userId);
  $("member-list").replaceChildren(
    ...[...byUser.entries()].map(([userId, row]) =>
      el(
        "li",
        {
          dataset: { user: userId, status: row.me ? $("my-status").value : presenceOf(userId) },
          title: row.me ? $("my-status").value : presenceOf(userId),
        },
        el("span", {}, row.me ? `${row.name} (me)` : row.name),
        row.count > 1 ? el("span", { class: "conns" }, `×${row.count} tabs`) : null,
      ),
    ),
  );
}

async function onSubmit(event) {
  event.preventDefault();
  const input = $("composer-text");
  const text = input.value.trim();
  if (!text || !selected) return;
  input.value = "";
  const note = $("composer-note");
  note.textContent = client.state === "connected" ? "" : "Offline: the message is queued and goes out on reconnect.";
  try {
    // The message shows up when the server delivers it back (to all members, sender included).
    await client.room(selected).send({ text, name: me.name || me.user_id });
    note.textContent = "";
  } catch (error) {
    note.textContent = `Not sent: ${error.message}`;
  }
}

async function renewCookie() {
  const response = await fetch("/login/renew", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  if (!response.ok) throw new Error(`the login could not be renewed (${response.status})`);
}

function showToken(expiresAt, verb) {
  const at = Number.isFinite(expiresAt) ? new Date(expiresAt).toLocaleTimeString() : "?";
  const span = $("token");
  span.textContent = `Token ${verb} ${at}`;
  span.dataset.expiresAt = String(expiresAt);
}

function wire() {
  client.onToken(({ event, expiresAt, error }) => {
    if (event === "expiring") showToken(expiresAt, "expires");
    if (event === "refreshed") {
      showToken(expiresAt, "refreshed, valid until");
      toast($("toasts"), { kind: "system", title: "Session", text: "Token refreshed without reconnecting." });
    }
    if (event === "refresh_failed") {
      toast($("toasts"), { kind: "critical", title: "Session", text: `Token refresh failed: ${error.message}` });
    }
  });
  const badge = $("badge");
  client.onState((event) => {
    showState(badge, event);
    if (event.state === "connected") refreshMembers();
    if (event.state === "error") {
      toast($("toasts"), {
        kind: "critical",
        title: "Disconnected",
        text: `The server closed the connection (${event.code} ${event.reason || ""}). Reload to try again.`,
        critical: true,
      });
    }
  });
  client.onRooms(({ change, room }) => {
    if (change === "left" && room === selected) {
      addEntry(room, { system: true, text: "You left this room." });
      selected = null;
      picked = false;
    }
    // Until the user picks a room, show the first group room (the personal
    // room is announced first, so it is only a stand-in while groups arrive).
    if (!picked && (selected === null || client.rooms.get(selected)?.type !== "group")) {
      const first = sortedRooms().find((r) => r.type === "group") ?? sortedRooms()[0];
      if (first && first.room !== selected) {
        select(first.room);
        return;
      }
    }
    renderRooms();
    if (room === selected && change === "joined") {
      // Back in the selected room after a reconnect.
      $("room-title").textContent = `${roomLabel(client.rooms.get(room))} · ${room}`;
      refreshMembers();
    }
  });
  client.on("message", onMessage);
  // After a reconnect each room says whether what it missed was replayed (it is
  // then already in the feed, in order) or is gone for good.
  client.onRecovery(({ room, recovered, replayed }) => {
    const text = recovered
      ? `Reconnected: ${replayed} missed message${replayed === 1 ? "" : "s"} delivered.`
      : "Reconnected: messages sent while you were away could not be recovered.";
    addEntry(room, { system: true, recovery: recovered ? "recovered" : "lost", text });
  });
  client.on("room_update", (msg) => {
    if ((msg.data?.room_id ?? msg.room) === selected) refreshMembers();
  });
  client.on("group_membership_change", (msg) => {
    const d = msg.data ?? {};
    toast($("toasts"), { kind: "system", title: "Groups", text: `${d.joined ? "Joined" : "Left"} ${d.group_name ?? d.group_id}` });
  });
  for (const [type, style] of Object.entries(TOASTS)) {
    client.on(type, (msg) => toast($("toasts"), { ...style, text: describe(msg.data) }));
  }
  $("composer").addEventListener("submit", onSubmit);
  client.presence.onChange(({ userId }) => showPresence(userId));
  $("my-status").addEventListener("change", (event) => {
    const status = event.target.value;
    client.presence.setStatus(status).catch((error) => {
      toast($("toasts"), { kind: "critical", title: "Status", text: error.message });
    });
    showPresence(client.userId);
  });
  $("status-picker").hidden = false;
}

async function main() {
  try {
    me = await fetchMe();
  } catch (error) {
    toast($("toasts"), { kind: "critical", title: "Error", text: error.message, critical: true });
    return;
  }
  if (!me) {
    $("login-needed").hidden = false;
    showState($("badge"), { state: "offline" });
    return;
  }
  $("who").textContent = me.name ? `${me.name} (${me.user_id})` : me.user_id;
  $("admin-link").hidden = !me.admin;
  $("logout").hidden = false;
  $("app").hidden = false;
  $("online").append($("toasts")); // under "Online here", never over it (style.css)
  $("composer-text").disabled = true;
  $("composer-send").disabled = true;
  // The dev login's tokens are short-lived (ROOMCAST_DEV_TOKEN_TTL): before one expires the
  // gateway warns, the login route renews the HttpOnly cookie and client.js hands it to
  // the connection, which lives on.
  client = new RoomcastClient({ renewCookie });
  showToken(Date.parse(me.expires_at), "expires");
  globalThis.roomcast = client; // handy in the console
  wire();
  client.connect();
}

main();
