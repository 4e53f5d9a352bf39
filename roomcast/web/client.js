/**
 * roomcast browser client: one reconnecting WebSocket to the gateway.
 *
 * An ES module with no dependencies and no build step. The browser sends the
 * `falcon_auth_token` cookie on the upgrade request, so pages need no token.
 * See docs/browser.md for the guarantees; the wire format is docs/protocol.md.
 *
 *   import { RoomcastClient } from "/websocket/client.js";
 *   const client = new RoomcastClient();
 *   client.onState(({ state }) => badge.textContent = state);
 *   client.on("notification", (msg) => toast(msg.data));
 *   client.connect();
 *   await client.room("group:42").send({ text: "hi" });
 */

import { Positions, Reason } from "./positions.js";
import { PresenceClient } from "./presence.js";
import { RecentMessages } from "./recent.js";
import { ConnectionStatus } from "./status.js";

export { Reason };

/** Connection states; `onState` fires once per change. */
export const State = Object.freeze({
  IDLE: "idle", // constructed, connect() not called yet
  CONNECTING: "connecting", // first attempt
  CONNECTED: "connected",
  RECONNECTING: "reconnecting", // lost; waiting for the backoff or trying again
  OFFLINE: "offline", // close() called: not connected and not trying
  ERROR: "error", // refused for good (1002 framing, 1008 policy, 3403 revoked, 3500 kicked)
});

/** WebSocket close codes the gateway sends (roomcast.protocol.codes.CloseCode). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002, // a frame RFC 6455 forbids (browsers never send one)
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SLOW_CONSUMER: 3008,
  STALE: 3009,
  INSUFFICIENT_STATE: 3010, // a gap in a room's stream: reconnect and recover
  TOKEN_EXPIRED: 3401, // the token expired unrefreshed: reconnect (the cookie may be fresh by now)
  REVOKED: 3403, // logged out everywhere: do not reconnect with this token
  KICKED: 3500,
});

// Every other close (including 1006 "abnormal", which is all a browser reports
// for a refused upgrade or a dead network) is worth another try.
const NO_RECONNECT = new Set([
  CloseCode.PROTOCOL_ERROR, CloseCode.POLICY_VIOLATION, CloseCode.REVOKED, CloseCode.KICKED,
]);

/** As the Go gateway's React client: wait 1 s × 1.5 per attempt, capped at 30 s. */
// The jitter matches the Python SDK (roomcast.client.backoff).
export const DEFAULT_BACKOFF = Object.freeze({ initial: 1000, factor: 1.5, max: 30000, jitter: 0.2 });

/**
 * The delay before reconnect attempt number `attempt` (0-based), in ms.
 *
 * The capped exponential delay is shortened by up to `jitter` × itself, so
 * clients dropped together (a restart) spread out instead of stampeding,
 * and the cap is never exceeded.
 */
export function backoffDelay(attempt, options = DEFAULT_BACKOFF, random = Math.random) {
  const { initial, factor, max, jitter } = { ...DEFAULT_BACKOFF, ...options };
  const base = Math.min(initial * factor ** attempt, max);
  return Math.round(base * (1 - jitter * random()));
}

/** A failed `send()`: an `error` reply, a timeout, or a lost connection. */
export class RoomcastError extends Error {
  constructor(code, message, { temporary = false, reply = null } = {}) {
    super(message);
    this.name = "RoomcastError";
    /** Wire code (`forbidden`, `invalid_field`, ...) or `timeout`, `connection_lost`, `closed`, `queue_full`. */
    this.code = code;
    /** Whether the same message may succeed later. */
    this.temporary = temporary;
    /** The server's `error` envelope, when there was one. */
    this.reply = reply;
  }
}

let counter = 0;
function defaultId() {
  // randomUUID exists only in secure contexts (https, localhost).
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  counter += 1;
  return `${Date.now().toString(36)}-${counter}-${Math.random().toString(36).slice(2, 10)}`;
}

function defaultUrl() {
  const loc = globalThis.location;
  if (!loc) throw new Error("RoomcastClient: pass options.url outside a browser");
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/websocket/connect`;
}

/** The gateway's refresh route, on the host of its WebSocket URL (same origin as the page). */
function defaultRefreshUrl(url) {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol === "wss:" ? "https" : "http"}://${parsed.host}/websocket/token/refresh`;
  } catch {
    return "/websocket/token/refresh";
  }
}

function report(error) {
  // A throwing handler must not stop the others or the read loop.
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else console.error(error);
}

/** A room the connection is in: scoped send, handlers and member list. */
export class Room {
  constructor(client, id) {
    this.client = client;
    this.id = id;
  }

  /** `{room, type, name, member_count}` from `room_joined`, or undefined if not a member. */
  get info() {
    return this.client.rooms.get(this.id);
  }

  /** Send a `message` with `data` to this room; resolves with the ack. */
  send(data, options) {
    return this.client.send({ type: "message", room: this.id, data }, options);
  }

  /** Handle messages of `type` ("*" for all) addressed to this room. */
  on(type, fn) {
    return this.client.on(type, (msg) => {
      if (msg.room === this.id) fn(msg);
    });
  }

  /** Who is online here: `[{connection_id, user_id, character_name}]`. */
  members(options) {
    return this.client.members(this.id, options);
  }

  /** `fn(outcome)` when this room recovers (or not) after a reconnect; see `onRecovery`. */
  onRecovery(fn) {
    return this.client.onRecovery((outcome) => {
      if (outcome.room === this.id) fn(outcome);
    });
  }

  /** `{epoch, offset}` of the last publication delivered here, if the room has history. */
  get position() {
    return this.client.position(this.id);
  }
}

export class RoomcastClient {
  /**
   * @param {object} [options]
   * @param {string} [options.url] defaults to `/websocket/connect` on this page's host
   * @param {number} [options.ackTimeout=10000] ms to wait for the reply to a send
   * @param {number} [options.heartbeatInterval=30000] ms between app-level pings
   * @param {number} [options.pongTimeout=10000] ms a ping may wait before the link counts as dead
   * @param {object} [options.backoff] `{initial, factor, max, jitter}`
   * @param {number} [options.maxQueue=1000] messages held while disconnected
   * @param {Function} [options.WebSocket] a WebSocket class (tests inject a fake)
   * @param {Function} [options.random] `() => [0, 1)` used for jitter
   * @param {object} [options.timers] `{setTimeout, clearTimeout}`
   * @param {Function} [options.newId] message id factory
   * @param {EventTarget} [options.network] fires `online`; defaults to `window`
   * @param {boolean} [options.recover=true] hand the server each room's position on reconnect
   * @param {boolean} [options.persistPositions=false] keep positions across a page reload (sessionStorage)
   * @param {Storage} [options.storage] the storage for `persistPositions` (default sessionStorage)
   * @param {number} [options.recent=0] keep this many recent messages per room (0: off)
   * @param {boolean} [options.refresh=true] when warned that the token expires, post the
   *   (renewed) cookie to the gateway's refresh route so the connection lives on
   * @param {string} [options.refreshUrl] that route (default: `/websocket/token/refresh`
   *   on the gateway's host; give `${API_PREFIX}/websocket/token/refresh` behind a prefix)
   * @param {Function} [options.renewCookie] `async () => {}` run first: the app's login
   *   flow sets a fresh HttpOnly `falcon_auth_token` cookie (the page cannot read it)
   * @param {Function} [options.fetch] the fetch function (tests inject one)
   */
  constructor(options = {}) {
    this.url = options.url ?? defaultUrl();
    this.ackTimeout = options.ackTimeout ?? 10000;
    this.heartbeatInterval = options.heartbeatInterval ?? 30000;
    this.pongTimeout = options.pongTimeout ?? 10000;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.maxQueue = options.maxQueue ?? 1000;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._random = options.random ?? Math.random;
    this._timers = options.timers ?? globalThis;
    this._newId = options.newId ?? defaultId;
    this._network = options.network ?? (typeof globalThis.addEventListener === "function" ? globalThis : null);
    this._recover = options.recover ?? true;
    this._positions = new Positions({
      storage: options.persistPositions ? (options.storage ?? globalThis.sessionStorage ?? null) : null,
      key: `roomcast:positions:${this.url}`,
    });
    this._recoveryHandlers = new Set();
    this._refresh = options.refresh ?? true;
    this._refreshUrl = options.refreshUrl ?? defaultRefreshUrl(this.url);
    this._renewCookie = options.renewCookie ?? null;
    this._fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    this._tokenHandlers = new Set();
    /** When the connection's token expires (ms since the epoch), once the gateway said so. */
    this.tokenExpiresAt = null;

    this._state = State.IDLE;
    this._ws = null;
    this._attempt = 0;
    this._retryTimer = null;
    this._heartbeatTimer = null;
    this._queue = []; // [{message, entry}] waiting for a connection
    this._pending = new Map(); // id -> {resolve, reject, timer}
    this._handlers = new Map(); // type -> Set<fn>
    this._stateHandlers = new Set();
    this._roomHandlers = new Set();
    /** @type {Map<string, {room: string, type: string, name: string, member_count: number}>} */
    this.rooms = new Map();
    this.connectionId = null;
    this.userId = null;
    /** `{code, reason}` of the last close, for the UI. */
    this.lastClose = null;
    this._onOnline = () => {
      // The network is back: skip the rest of the backoff wait.
      if (this._state === State.RECONNECTING && this._retryTimer !== null) {
        this._timers.clearTimeout(this._retryTimer);
        this._retryTimer = null;
        this._open();
      }
    };
    this._status = new ConnectionStatus(this);
    this._presence = null;
    this._recent = options.recent ? new RecentMessages(this, { limit: options.recent }) : null;
  }

  get state() {
    return this._state;
  }

  /** `{state, connectionTime, lastError, reconnectAttempts, reconnects}` (status.js). */
  get status() {
    return this._status.value;
  }

  /** `fn(status)` on every status change; returns an unsubscribe function. */
  onStatus(fn) {
    return this._status.subscribe(fn);
  }

  /**
   * `fn({event, expiresAt, error})` on the token's life: `expiring` (the gateway's
   * warning), `refreshed` or `refresh_failed`. Returns an unsubscribe function.
   */
  onToken(fn) {
    this._tokenHandlers.add(fn);
    return () => this._tokenHandlers.delete(fn);
  }

  /**
   * Hand the browser's current cookie to this connection (the refresh route), after
   * `renewCookie` if given. Resolves to the route's answer `{user_id, connection_ids, expires_at}`.
   */
  async refreshToken() {
    const id = this.connectionId;
    if (!id) throw new RoomcastError("closed", "not connected");
    if (this._renewCookie) await this._renewCookie();
    const response = await this._fetch(this._refreshUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ connection_ids: [id] }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new RoomcastError(body.reason ?? body.code ?? "refresh_failed",
        body.detail ?? `token refresh refused (${response.status})`);
    }
    this.tokenExpiresAt = Date.parse(body.expires_at);
    this._emitToken({ event: "refreshed", expiresAt: this.tokenExpiresAt });
    return body;
  }

  _emitToken(event) {
    for (const fn of this._tokenHandlers) {
      try {
        fn(event);
      } catch (error) {
        report(error);
      }
    }
  }

  _tokenExpiring(data) {
    this.tokenExpiresAt = Date.parse(data.expires_at);
    this._emitToken({ event: "expiring", expiresAt: this.tokenExpiresAt });
    if (!this._refresh || !this._fetch) return;
    // If it fails, the gateway closes with 3401 at expiry and the reconnect carries
    // whatever cookie the browser has then.
    this.refreshToken().catch((error) => {
      this._emitToken({ event: "refresh_failed", expiresAt: this.tokenExpiresAt, error });
    });
  }

  /** User presence: set my status, follow others, who is online (presence.js). */
  get presence() {
    this._presence ??= new PresenceClient(this);
    return this._presence;
  }

  /** The room's recent messages, oldest first (with the `recent` option; recent.js). */
  recent(room) {
    return this._recent?.get(room) ?? [];
  }

  /** `fn({room, messages})` when a room's recent messages change. */
  onRecent(fn) {
    if (!this._recent) throw new Error("construct the client with { recent: N } first");
    return this._recent.onChange(fn);
  }

  /** Messages waiting for a connection. */
  get queued() {
    return this._queue.length;
  }

  /** Start connecting; a no-op while connected or already trying. */
  connect() {
    if (this._ws !== null || this._retryTimer !== null) return this;
    this._attempt = 0;
    this._network?.addEventListener("online", this._onOnline);
    this._setState(State.CONNECTING);
    this._open();
    return this;
  }

  /** Disconnect and stop reconnecting; queued and unanswered sends are rejected. */
  close(code = CloseCode.NORMAL, reason = "client closed") {
    this._network?.removeEventListener("online", this._onOnline);
    if (this._retryTimer !== null) this._timers.clearTimeout(this._retryTimer);
    this._retryTimer = null;
    const ws = this._detach();
    if (ws) ws.close(code, reason);
    this._failAll("closed", "client closed");
    this.lastClose = { code, reason };
    this._setState(State.OFFLINE, { code, reason });
  }

  /**
   * Send one envelope; resolves with the server's reply carrying the same id.
   *
   * While disconnected the message waits in an in-order queue and is written
   * once when the connection opens; the reply timeout starts when it is
   * written. A connection lost before the reply rejects with
   * `connection_lost` and the message is not resent (it may have arrived).
   */
  send(message, { timeout = this.ackTimeout } = {}) {
    if (message === null || typeof message !== "object" || typeof message.type !== "string") {
      return Promise.reject(new TypeError("send() needs an object with a string `type`"));
    }
    if (this._state === State.OFFLINE || this._state === State.ERROR) {
      return Promise.reject(new RoomcastError("closed", `client is ${this._state}`));
    }
    const full = { ...message, id: message.id ?? this._newId() };
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, timer: null, timeout };
      if (this._state === State.CONNECTED) {
        this._write(full, entry);
      } else if (this._queue.length >= this.maxQueue) {
        reject(new RoomcastError("queue_full", "offline queue is full", { temporary: true }));
      } else {
        this._queue.push({ message: full, entry });
      }
    });
  }

  /** App-level ping (the React client's heartbeat); resolves with the pong. */
  ping(options) {
    return this.send({ type: "system", data: { action: "ping" } }, options);
  }

  /** Members of a room this connection is in. */
  async members(room, options) {
    const reply = await this.send({ type: "system", data: { action: "members", room } }, options);
    return reply.data?.members ?? [];
  }

  /** Join a room the user is entitled to (a room left earlier); resolves with the ack. */
  joinRoom(room, options) {
    return this.send({ type: "system", data: { action: "join", room } }, options);
  }

  /** Leave a room until `joinRoom` or the next connection; resolves with the ack. */
  leaveRoom(room, options) {
    return this.send({ type: "system", data: { action: "leave", room } }, options);
  }

  /** A handle for one room. */
  room(id) {
    return new Room(this, id);
  }

  /** Handle incoming messages of `type` ("*" for every message); returns an unsubscribe function. */
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this._handlers.get(type)?.delete(fn);
  }

  /** `fn({state, previous, code?, reason?, attempt?, delay?})` on every state change. */
  onState(fn) {
    this._stateHandlers.add(fn);
    return () => this._stateHandlers.delete(fn);
  }

  /**
   * `fn({room, recovered, reason, replayed, position})` once per room after a
   * reconnect (and when a live publication shows the server lost a room's
   * stream). `recovered: false` means publications were missed for good: reload
   * that room's state.
   */
  onRecovery(fn) {
    this._recoveryHandlers.add(fn);
    return () => this._recoveryHandlers.delete(fn);
  }

  /** `{epoch, offset}` of the last publication delivered in `room`, or undefined. */
  position(room) {
    return this._positions.get(room);
  }

  /** Every room's last position, `{room: {epoch, offset}}`. */
  get positions() {
    return this._positions.snapshot();
  }

  /** Forget every position (stored ones too): the next connection recovers nothing. */
  forgetPositions() {
    this._positions.clear();
  }

  /** `fn({change: "joined"|"left"|"updated"|"cleared", room, rooms})` when `rooms` changes. */
  onRooms(fn) {
    this._roomHandlers.add(fn);
    return () => this._roomHandlers.delete(fn);
  }

  // --- connection lifecycle ------------------------------------------------

  _open() {
    let ws;
    try {
      ws = new this._WebSocket(this._recover ? this._positions.url(this.url) : this.url);
    } catch (error) {
      // A bad URL or a blocked one (ws:// from an https page) will never work.
      this._failAll("closed", error.message);
      this.lastClose = { code: null, reason: error.message };
      this._setState(State.ERROR, { reason: error.message });
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      if (ws !== this._ws) return;
      this._attempt = 0; // reset the backoff after each success
      // The positions go first: the server joins rooms once it has them.
      const recovering = this._recover && this._sendRecover();
      this._setState(State.CONNECTED, { recovering });
      this._flush();
      this._scheduleHeartbeat();
    };
    ws.onmessage = (event) => {
      if (ws === this._ws) this._receive(event.data);
    };
    ws.onclose = (event) => {
      if (ws === this._ws) this._lost(event.code, event.reason);
    };
    // `error` is always followed by `close`, which does the work.
    ws.onerror = () => {};
  }

  /** Forget the current socket so its late events are ignored. */
  _detach() {
    const ws = this._ws;
    this._ws = null;
    if (this._heartbeatTimer !== null) this._timers.clearTimeout(this._heartbeatTimer);
    this._heartbeatTimer = null;
    for (const [, entry] of this._pending) {
      this._timers.clearTimeout(entry.timer);
      entry.reject(new RoomcastError("connection_lost", "connection lost before the reply", { temporary: true }));
    }
    this._pending.clear();
    this.connectionId = null;
    this._positions.disconnected(this.rooms.keys());
    if (this.rooms.size > 0) {
      // Rooms are per connection; the next one announces its own with room_joined.
      this.rooms.clear();
      this._emitRooms("cleared", null);
    }
    return ws;
  }

  _lost(code, reason) {
    this._detach();
    this.lastClose = { code, reason };
    if (NO_RECONNECT.has(code)) {
      this._network?.removeEventListener("online", this._onOnline);
      this._failAll("closed", `closed by the server (${code} ${reason || ""})`.trim());
      this._setState(State.ERROR, { code, reason });
      return;
    }
    const delay = backoffDelay(this._attempt, this.backoff, this._random);
    this._attempt += 1;
    this._setState(State.RECONNECTING, { code, reason, attempt: this._attempt, delay });
    this._status.retrying(this._attempt, code, reason);
    this._retryTimer = this._timers.setTimeout(() => {
      this._retryTimer = null;
      this._open();
    }, delay);
  }

  _scheduleHeartbeat() {
    this._heartbeatTimer = this._timers.setTimeout(() => {
      this._heartbeatTimer = null;
      const ws = this._ws;
      this.ping({ timeout: this.pongTimeout }).then(
        () => {
          if (ws === this._ws) this._scheduleHeartbeat();
        },
        (error) => {
          // No pong in time: the link is dead even if the socket has not noticed
          // (a sleeping laptop, a dropped NAT entry). Drop it now; don't wait for
          // the closing handshake that will never complete.
          if (ws !== this._ws || error.code !== "timeout") return;
          this._lost(4000, "heartbeat timeout"); // detaches ws: its close event is ignored
          ws.close(4000, "heartbeat timeout");
        },
      );
    }, this.heartbeatInterval);
  }

  // --- messages --------------------------------------------------------------

  _write(message, entry) {
    this._pending.set(message.id, entry);
    entry.timer = this._timers.setTimeout(() => {
      this._pending.delete(message.id);
      entry.reject(new RoomcastError("timeout", "Message timeout", { temporary: true }));
    }, entry.timeout);
    this._ws.send(JSON.stringify(message));
  }

  /** Write the `recover` message; whether there was one. */
  _sendRecover() {
    const frame = this._positions.recoverMessage();
    if (frame === null) return false;
    const message = { ...frame, id: this._newId() };
    const entry = {
      resolve: (reply) => this._positions.acked(reply),
      reject: () => {}, // a server without recovery: room_joined tells the outcome
      timer: null,
      timeout: this.ackTimeout,
    };
    this._write(message, entry);
    return true;
  }

  _flush() {
    const queue = this._queue;
    this._queue = [];
    for (const { message, entry } of queue) this._write(message, entry);
  }

  _failAll(code, text) {
    const queue = this._queue;
    this._queue = [];
    for (const { entry } of queue) entry.reject(new RoomcastError(code, text));
  }

  _receive(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return; // the gateway only sends JSON text; ignore anything else
    }
    if (msg === null || typeof msg !== "object" || typeof msg.type !== "string") return;

    const entry = msg.id != null ? this._pending.get(msg.id) : undefined;
    if (entry) {
      this._pending.delete(msg.id);
      this._timers.clearTimeout(entry.timer);
      if (msg.type === "error") {
        const data = msg.data ?? {};
        entry.reject(new RoomcastError(data.code ?? "error", data.message ?? "error", {
          temporary: Boolean(data.temporary),
          reply: msg,
        }));
      } else {
        entry.resolve(msg);
      }
    }
    const { deliver, outcome } = this._positions.check(msg);
    if (!deliver) return; // delivered before (a replay overlapping live, a retry)
    const joined = this._track(msg);
    if (msg.type === "system" && msg.data?.action === "token_expiring") this._tokenExpiring(msg.data);
    this._dispatch(msg.type, msg);
    this._dispatch("*", msg);
    this._emitRecovery(outcome ?? joined);
  }

  /** Keep connection id and rooms current from the server's own announcements. */
  _track(msg) {
    const data = msg.data ?? {};
    if (msg.type === "system_notification" && data.connection_id) {
      this.connectionId = data.connection_id;
      this.userId = data.user_id ?? this.userId;
      this._positions.userSeen(data.user_id);
    } else if (msg.type === "room_joined") {
      const room = data.room ?? data.room_id ?? msg.room;
      if (!room) return;
      this.rooms.set(room, {
        room,
        type: data.type ?? (room.split(":")[0] || "group"),
        name: data.name ?? room,
        member_count: data.member_count ?? 1,
      });
      this._emitRooms("joined", room);
      return this._positions.joined(room, data);
    } else if (msg.type === "room_left") {
      const room = data.room ?? data.room_id ?? msg.room;
      if (room) this._positions.left(room);
      if (room && this.rooms.delete(room)) this._emitRooms("left", room);
    } else if (msg.type === "room_update") {
      const room = data.room_id ?? msg.room;
      const info = this.rooms.get(room);
      if (info && typeof data.member_count === "number") {
        info.member_count = data.member_count;
        this._emitRooms("updated", room);
      }
    }
  }

  _dispatch(type, msg) {
    const handlers = this._handlers.get(type);
    if (!handlers) return;
    for (const fn of [...handlers]) {
      try {
        fn(msg);
      } catch (error) {
        report(error);
      }
    }
  }

  _emitRecovery(outcome) {
    if (!outcome) return;
    for (const fn of [...this._recoveryHandlers]) {
      try {
        fn(outcome);
      } catch (error) {
        report(error);
      }
    }
  }

  _emitRooms(change, room) {
    for (const fn of [...this._roomHandlers]) {
      try {
        fn({ change, room, rooms: this.rooms });
      } catch (error) {
        report(error);
      }
    }
  }

  _setState(state, detail = {}) {
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    for (const fn of [...this._stateHandlers]) {
      try {
        fn({ state, previous, ...detail });
      } catch (error) {
        report(error);
      }
    }
  }
}
