// roomcast admin dashboard: live counts, connection and room tables, send and membership forms.
// Talks to the gateway's admin API (docs/api.md) with the page's cookie.
import { api, ApiError, clock, el, fetchMe, toast } from "/static/ui.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// ?interval=ms lets a slow link poll less often.
const POLL_MS = Math.max(500, Number(params.get("interval")) || 2000);

let last = null; // {at, processed} of the previous status poll, for messages/s
let tablesBusy = false;

function query(form) {
  const out = new URLSearchParams();
  for (const [key, value] of new FormData(form)) if (String(value).trim()) out.set(key, String(value).trim());
  const text = out.toString();
  return text ? `?${text}` : "";
}

function deny(title, text) {
  $("dashboard").hidden = true;
  $("health").hidden = true;
  $("denied").hidden = false;
  $("denied-title").textContent = title;
  if (text) $("denied-text").replaceChildren(`${text} `, el("a", { href: "/login" }, "Log in as an administrator."));
}

async function pollStatus() {
  let status;
  try {
    status = await api("GET", "/websocket/status");
  } catch (error) {
    // 503 still carries the counts, with the reason it is unhealthy.
    if (!(error instanceof ApiError && error.status === 503 && error.body)) throw error;
    status = error.body;
  }
  const at = performance.now();
  const processed = Number(status.messages_processed ?? 0);
  $("stat-connections").textContent = String(status.active_connections ?? status.total_connections ?? 0);
  $("stat-rooms").textContent = String(status.total_rooms ?? 0);
  $("stat-total").textContent = String(processed);
  if (last !== null && at > last.at) {
    const rate = Math.max(0, (processed - last.processed) / ((at - last.at) / 1000));
    $("stat-rate").textContent = rate < 10 ? rate.toFixed(1) : String(Math.round(rate));
  }
  last = { at, processed };
  const health = status.status ?? status.health ?? "unknown";
  $("health").dataset.state = health;
  $("health").textContent = health;
  $("server-id").textContent = status.server_id ? `server ${status.server_id}` : "";
  $("updated").textContent = `updated ${clock()}`;
}

function emptyRow(columns, text) {
  return el("tr", { class: "empty" }, el("td", { colSpan: columns }, text));
}

function isDenied(error) {
  return error instanceof ApiError && (error.status === 401 || error.status === 403);
}

/** Fill a table's body from a listing, or say why the listing is missing. */
async function fillTable(tableId, totalId, columns, path, rowsOf, renderRow) {
  const tbody = $(tableId).tBodies[0];
  let body;
  try {
    body = await api("GET", path);
  } catch (error) {
    if (isDenied(error)) throw error;
    $(totalId).textContent = "";
    tbody.replaceChildren(emptyRow(columns, `Listing unavailable: ${error.message}`));
    return;
  }
  const rows = rowsOf(body) ?? [];
  $(totalId).textContent = `(${body.total ?? rows.length})`;
  tbody.replaceChildren(...(rows.length === 0 ? [emptyRow(columns, "None match.")] : rows.map(renderRow)));
}

function connectionRow(c) {
  return el(
    "tr",
    { dataset: { id: c.id } },
    el("td", {}, el("code", {}, c.id)),
    el("td", {}, el("code", {}, c.user_id ?? "")),
    el("td", {}, c.character_name ? `${c.character_name} (${c.character_id ?? "–"})` : String(c.character_id ?? "")),
    el("td", { class: "rooms" }, ...(c.rooms ?? []).map((r) => el("code", {}, typeof r === "string" ? r : r.id))),
    el("td", { title: c.created_at ?? "" }, c.created_at ? clock(c.created_at) : ""),
  );
}

function roomRow(r) {
  return el(
    "tr",
    { dataset: { id: r.id } },
    el("td", {}, el("code", {}, r.id)),
    el("td", {}, r.type ?? ""),
    el("td", {}, r.name ?? ""),
    el("td", {}, String(r.member_count ?? "")),
  );
}

async function refreshTables() {
  if (tablesBusy) return; // a slow answer must not pile up requests
  tablesBusy = true;
  try {
    await Promise.all([
      fillTable("connections-table", "connections-total", 5,
        `/websocket/connections${query($("connections-filter"))}`, (b) => b.connections, connectionRow),
      fillTable("rooms-table", "rooms-total", 4,
        `/websocket/rooms${query($("rooms-filter"))}`, (b) => b.rooms, roomRow),
    ]);
  } finally {
    tablesBusy = false;
  }
}

async function tick() {
  const [status, tables] = await Promise.allSettled([pollStatus(), refreshTables()]);
  const failed = [status, tables].find((r) => r.status === "rejected");
  if (failed && isDenied(failed.reason)) {
    deny("Administrators only", "Your login is not an administrator's (or it expired).");
    return; // stop polling
  }
  if (status.status === "rejected") {
    $("updated").textContent = `update failed: ${status.reason.message}`;
    $("health").dataset.state = "unhealthy";
    $("health").textContent = "unreachable";
  }
  setTimeout(tick, POLL_MS);
}

function result(id, ok, text) {
  const node = $(id);
  node.className = `result ${ok ? "ok" : "error"}`;
  node.textContent = text;
}

const SEND_PATHS = {
  all: () => "/websocket/broadcast",
  user: (id) => `/websocket/users/${encodeURIComponent(id)}/message`,
  room: (id) => `/websocket/rooms/${encodeURIComponent(id)}/message`,
  connection: (id) => `/websocket/connections/${encodeURIComponent(id)}/message`,
};

async function onSend(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const f = new FormData(form);
  const target = String(f.get("target"));
  const targetId = String(f.get("target_id") ?? "").trim();
  if (target !== "all" && !targetId) return result("send-result", false, "Give the id of the target.");
  let data;
  const raw = String(f.get("data") ?? "").trim();
  if (raw) {
    try {
      data = JSON.parse(raw);
    } catch (error) {
      return result("send-result", false, `Data is not valid JSON: ${error.message}`);
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      return result("send-result", false, "Data must be a JSON object.");
    }
  } else {
    data = { message: String(f.get("message") ?? "") };
  }
  try {
    const reply = await api("POST", SEND_PATHS[target](targetId), { type: String(f.get("type")), data });
    result("send-result", true, `Sent to ${reply?.recipients_count ?? "?"} recipient(s), id ${reply?.message_id ?? "?"}.`);
  } catch (error) {
    result("send-result", false, `Not sent: ${error.message}`);
  }
}

async function onGroups(event) {
  event.preventDefault();
  const f = new FormData(event.currentTarget);
  const add = event.submitter?.value !== "remove";
  const userId = String(f.get("user_id")).trim();
  const groupId = String(f.get("group_id")).trim();
  const path = `/websocket/users/${encodeURIComponent(userId)}/groups/${encodeURIComponent(groupId)}`;
  try {
    if (add) await api("PUT", path, { name: String(f.get("name") ?? "").trim() || groupId });
    else await api("DELETE", path);
    result("groups-result", true, `${add ? "Added" : "Removed"} ${userId} ${add ? "to" : "from"} group ${groupId}.`);
    refreshTables();
  } catch (error) {
    result("groups-result", false, `Failed: ${error.message}`);
  }
}

function wire() {
  for (const id of ["connections-filter", "rooms-filter"]) {
    const form = $(id);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      refreshTables().catch((error) => toast($("toasts"), { kind: "critical", title: "Error", text: error.message }));
    });
    // A reset clears the fields after this event; refresh once they are empty.
    form.addEventListener("reset", () => setTimeout(() => refreshTables().catch(() => {})));
  }
  const sendForm = $("send-form");
  sendForm.elements.target.addEventListener("change", (event) => {
    const all = event.target.value === "all";
    sendForm.elements.target_id.disabled = all;
    sendForm.elements.target_id.placeholder = all ? "not needed for everyone" : { user: "user id", room: "group:…", connection: "connection id" }[event.target.value];
  });
  sendForm.addEventListener("submit", onSend);
  $("groups-form").addEventListener("submit", onGroups);
}

async function main() {
  let me;
  try {
    me = await fetchMe();
  } catch (error) {
    toast($("toasts"), { kind: "critical", title: "Error", text: error.message, critical: true });
    return;
  }
  if (!me) return deny("Not logged in", null);
  $("who").textContent = me.name || me.user_id;
  if (!me.admin) return deny("Administrators only", "You are logged in, but not as an administrator.");
  $("dashboard").hidden = false;
  wire();
  tick();
}

main();
