// roomcast admin dashboard: live figures and charts pushed over a WebSocket, a room's tail,
// connection and room tables, send and membership forms. Talks to the gateway's admin
// API (docs/api.md) with the page's cookie.
import { format, sparkline, svgElement } from "/static/admin/charts.js";
import { connectLive } from "/static/admin/live.js";
import { api, ApiError, clock, el, fetchMe, setApiPrefix, toast } from "/static/ui.js";

const $ = (id) => document.getElementById(id);
const SPAN = 900; // seconds shown by the charts
const TAIL_ROWS = 200;

let tablesBusy = false;
let live = null;
const series = new Map(); // server_id -> [[t, connections, messages/s, deliveries/s], ...]
let lastTotals = null;

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

function showTotals(totals) {
  $("stat-connections").textContent = String(totals.connections ?? 0);
  $("stat-rooms").textContent = String(totals.rooms ?? 0);
  $("stat-users").textContent = String(totals.users_online ?? 0);
  const health = totals.healthy === false ? "unhealthy" : "healthy";
  $("health").dataset.state = health;
  $("health").textContent = health;
  $("updated").textContent = `updated ${clock()}`;
  const changed = lastTotals && (lastTotals.connections !== totals.connections || lastTotals.rooms !== totals.rooms);
  lastTotals = totals;
  // The tables follow the figures: refetched when the counts move, not on a timer.
  if (changed) refreshTables().catch(() => {});
}

function instanceRow(server) {
  let row = $("charts-table").querySelector(`tr[data-server="${CSS.escape(server)}"]`);
  if (row) return row;
  const cell = (metric, label) => {
    const svg = svgElement();
    svg.classList.add("spark");
    svg.dataset.metric = metric;
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    return el("td", {}, el("div", { class: "chart-cell" }, svg, el("output", { dataset: { metric } }, "–")));
  };
  row = el("tr", { dataset: { server } },
    el("td", { title: server }, el("code", {}, server.slice(0, 8))),
    cell("connections", "Connections"), cell("messages", "Messages per second"),
    cell("deliveries", "Deliveries per second"));
  $("charts-table").tBodies[0].append(row);
  return row;
}

function drawCharts() {
  const now = Date.now() / 1000;
  let messages = 0;
  let deliveries = 0;
  for (const [server, samples] of series) {
    while (samples.length && samples[0][0] < now - SPAN) samples.shift();
    const row = instanceRow(server);
    const last = samples[samples.length - 1];
    // An instance that stopped sampling for a minute is gone: drop its row.
    if (!last || last[0] < now - 60) {
      series.delete(server);
      row.remove();
      continue;
    }
    ["connections", "messages", "deliveries"].forEach((metric, i) => {
      const points = samples.map((s) => [s[0], s[i + 1]]);
      sparkline(row.querySelector(`svg[data-metric="${metric}"]`), points, { now, span: SPAN, label: metric });
      row.querySelector(`output[data-metric="${metric}"]`).textContent = format(last[i + 1]);
    });
    messages += last[2];
    deliveries += last[3];
  }
  $("stat-rate").textContent = format(messages);
  $("stat-deliveries").textContent = format(deliveries);
}

function onSnapshot(msg) {
  series.clear();
  $("charts-table").tBodies[0].replaceChildren();
  for (const [server, samples] of Object.entries(msg.series ?? {})) series.set(server, samples.slice());
  $("server-id").textContent = msg.server_id ? `server ${msg.server_id}` : "";
  showTotals(msg.totals ?? {});
  drawCharts();
}

function onTick(msg) {
  for (const [server, sample] of Object.entries(msg.samples ?? {})) {
    const samples = series.get(server) ?? [];
    if (!samples.length || samples[samples.length - 1][0] < sample[0]) samples.push(sample);
    series.set(server, samples);
  }
  showTotals(msg.totals ?? {});
  drawCharts();
}

function onTail(msg) {
  if (msg.type === "tailing") {
    $("tail-state").textContent = msg.room ? `tailing ${msg.room}` : "stopped";
    return;
  }
  if (msg.type === "error") {
    $("tail-state").textContent = msg.message;
    return;
  }
  if (msg.type === "tail_dropped") {
    $("tail-state").textContent = `${msg.count} message(s) skipped (too fast to show)`;
    return;
  }
  if (msg.type !== "tail") return;
  const m = msg.message ?? {};
  const tbody = $("tail-table").tBodies[0];
  tbody.prepend(el("tr", { dataset: { id: m.id ?? "" } },
    el("td", { title: m.timestamp ?? "" }, m.timestamp ? clock(m.timestamp) : ""),
    el("td", {}, m.type ?? ""),
    el("td", {}, el("code", {}, m.from ?? "")),
    el("td", {}, String(m.size ?? "")),
    el("td", { class: "data" }, "data" in m ? JSON.stringify(m.data) : "(hidden)")));
  while (tbody.rows.length > TAIL_ROWS) tbody.deleteRow(tbody.rows.length - 1);
}

async function onLiveState(state) {
  $("live-state").textContent = state;
  if (state !== "reconnecting") return;
  $("health").dataset.state = "unhealthy";
  $("health").textContent = "unreachable";
  try {
    const me = await fetchMe();
    if (me && !me.admin) {
      live.close();
      deny("Administrators only", "Your login is not an administrator's (or it expired).");
    }
  } catch {
    // The server is down: the socket keeps trying.
  }
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

/** "Name (id)"; a character id of 0 (dev-login and API tokens) means none, so no "(0)". */
function characterLabel(c) {
  const id = c.character_id ? `(${c.character_id})` : "";
  return [c.character_name ?? "", id].filter(Boolean).join(" ");
}

function connectionRow(c) {
  return el(
    "tr",
    { dataset: { id: c.id } },
    el("td", {}, el("code", {}, c.id)),
    el("td", {}, el("code", {}, c.user_id ?? "")),
    el("td", {}, characterLabel(c)),
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
    result("send-result", true, `Sent to ${reply?.recipients_count ?? 0} recipient(s), id ${reply?.message_id ?? "?"}.`);
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
  $("tail-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("tail-table").tBodies[0].replaceChildren();
    live.tail(String(new FormData(event.currentTarget).get("room")).trim());
  });
  $("tail-stop").addEventListener("click", () => live.untail());
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
  setApiPrefix(me.api_prefix);
  $("logout").hidden = false;
  $("who").textContent = me.name || me.user_id;
  if (!me.admin) return deny("Administrators only", "You are logged in, but not as an administrator.");
  $("dashboard").hidden = false;
  live = connectLive({ onSnapshot, onTick, onTail, onState: onLiveState });
  wire();
  refreshTables().catch((error) => {
    if (isDenied(error)) deny("Administrators only", "Your login is not an administrator's (or it expired).");
  });
}

main();
