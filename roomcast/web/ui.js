/**
 * Small DOM helpers shared by the demo app and the admin dashboard.
 *
 * Everything is built with createElement/textContent: text from the wire or
 * from other users never goes through innerHTML.
 */

/** `el("li", {class: "x", dataset: {room: "a"}}, "text", child)` */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
  return node;
}

/** Show the connection state on a badge element (`data-state` drives the colour). */
export function showState(badge, { state, delay }) {
  badge.dataset.state = state;
  badge.textContent = state;
  badge.title = state === "reconnecting" && delay ? `next attempt in ${Math.ceil(delay / 1000)} s` : "";
}

const TOAST_MS = 8000;

/**
 * Add a toast to `container`; `critical` toasts stay until dismissed.
 * @returns {HTMLElement} the toast
 */
export function toast(container, { kind = "info", title, text, critical = false }) {
  const close = el("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
  const node = el(
    "div",
    { class: `toast toast-${kind}`, role: critical ? "alert" : "status", dataset: { kind } },
    el("div", { class: "toast-body" }, title ? el("strong", {}, title) : null, el("span", {}, text)),
    close,
  );
  close.addEventListener("click", () => node.remove());
  container.append(node);
  if (!critical) setTimeout(() => node.remove(), TOAST_MS);
  return node;
}

/** A readable line for a notification-like message's data. */
export function describe(data) {
  if (data == null) return "";
  if (typeof data !== "object") return String(data);
  return data.message ?? data.text ?? data.title ?? data.status ?? JSON.stringify(data);
}

/** The logged-in user (`{user_id, name, groups, admin}`), or null when not logged in. */
export async function fetchMe() {
  const response = await fetch("/api/me", { headers: { Accept: "application/json" } });
  if (response.status === 401 || response.status === 403) return null;
  if (!response.ok) throw new Error(`/api/me answered ${response.status}`);
  return response.json();
}

/** An error from the gateway's HTTP API, with its status and body. */
export class ApiError extends Error {
  constructor(status, body) {
    // The API answers RFC 9457 problem details: {title, status, detail, errors?: [{location, message}]}.
    const details = Array.isArray(body?.errors)
      ? body.errors.map((d) => (d.location ? `${d.location}: ${d.message}` : d.message)).join("; ")
      : "";
    const text = body?.detail ?? body?.message ?? body?.title ?? `HTTP ${status}`;
    super(details && !text.includes(details) ? `${text} (${details})` : text);
    this.status = status;
    this.body = body;
  }
}

let apiPrefix = "";

/** Where the HTTP API is mounted (the gateway's API_PREFIX, from /api/me). */
export function setApiPrefix(prefix) {
  apiPrefix = typeof prefix === "string" ? prefix : "";
}

/**
 * Call the gateway's JSON API with the page's cookie.
 *
 * Bodies are always JSON: a cross-site form cannot send that content type
 * without a CORS preflight, which keeps the cookie-authenticated POSTs safe.
 */
export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(apiPrefix + path, init);
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { detail: text };
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

/** `12:03:04` for an RFC 3339 string or Unix milliseconds; now when absent. */
export function clock(timestamp) {
  const date = timestamp === undefined ? new Date() : new Date(timestamp);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour12: false });
}
