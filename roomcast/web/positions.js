/**
 * Per-room stream positions for the roomcast browser client: recovery after a
 * reconnect, and exactly-once delivery.
 *
 * Publications of a room with history carry `offset` (+1 per publication) and
 * `epoch` (changes when the server lost the room's stream). `Positions` keeps
 * the last `{epoch, offset}` delivered per room, builds the `recover` message
 * sent first on a reconnect, drops what was already delivered, and turns the
 * server's answers (and what it sees live) into one outcome per room: either
 * nothing was missed, or the app must reload that room's state. The same rules
 * as the Python SDK (roomcast.client.positions). No I/O besides the optional
 * storage (sessionStorage keeps positions across a page reload).
 */

/** Why a room did, or did not, recover. */
export const Reason = Object.freeze({
  RECOVERED: "recovered", // every missed publication was replayed
  NOT_RECOVERED: "not_recovered", // the server could not: epoch changed, data expired, too many
  NO_HISTORY: "no_history", // the room keeps no history: what was published meanwhile is gone
  UNSUPPORTED: "unsupported", // positions were sent but the server did not answer them
  NO_POSITION: "no_position", // the client had no position for a room it was in
  EPOCH_CHANGED: "epoch_changed", // a live publication came with a new epoch: the stream was lost
  GAP: "gap", // a live publication skipped offsets (never expected from a roomcast server)
});

/** Epochs a room left behind that are remembered, to drop their late publications. */
const RETIRED_EPOCHS = 4;

/** `{epoch, offset}` when both are valid, else null. */
export function toPosition(epoch, offset) {
  if (typeof epoch !== "string" || epoch === "") return null;
  if (!Number.isInteger(offset) || offset < 0) return null;
  return { epoch, offset };
}

/** `url` with `recover=1` in its query. */
export function recoverUrl(url) {
  const [base, hash] = url.split("#", 2);
  const [path, query = ""] = base.split("?", 2);
  const params = new URLSearchParams(query);
  params.set("recover", "1");
  return `${path}?${params}${hash === undefined ? "" : `#${hash}`}`;
}

export class Positions {
  /**
   * @param {object} [options]
   * @param {Storage|null} [options.storage] where positions survive a page reload (sessionStorage)
   * @param {string} [options.key] the storage key
   */
  constructor({ storage = null, key = "roomcast:positions" } = {}) {
    this._storage = storage;
    this._key = key;
    this._rooms = new Map(); // room -> {position, retired: [epoch]}
    this._expected = new Set(); // rooms of the last connection: their next room_joined reports
    this._sent = new Map(); // room -> position sent in this connection's recover message
    this._user = null;
    /** Counters, for tests and the console. */
    this.stats = { duplicates: 0, stale: 0, recovered: 0, notRecovered: 0 };
    this._load();
  }

  /** The last position delivered in `room`, or undefined. */
  get(room) {
    return this._rooms.get(room)?.position ?? undefined;
  }

  /** `{room: {epoch, offset}}` for every room with a position. */
  snapshot() {
    const out = {};
    for (const [room, state] of this._rooms) if (state.position) out[room] = { ...state.position };
    return out;
  }

  /** Whether the next connection has positions to hand to the server. */
  get wantsRecovery() {
    for (const state of this._rooms.values()) if (state.position) return true;
    return false;
  }

  /** The URL for the next connection: `?recover=1` when positions will be sent. */
  url(url) {
    return this.wantsRecovery ? recoverUrl(url) : url;
  }

  /** The `recover` message (without its id) to send first on a new connection, or null. */
  recoverMessage() {
    this._sent = new Map(Object.entries(this.snapshot()));
    if (this._sent.size === 0) return null;
    return { type: "system", data: { action: "recover", positions: this.snapshot() } };
  }

  /** The welcome named the user: positions saved for another user are not ours. */
  userSeen(userId) {
    if (userId == null) return;
    if (this._user !== null && this._user !== userId) {
      this._rooms.clear();
      this._expected.clear();
      this._sent.clear();
    }
    this._user = userId;
    this._save();
  }

  /** Handle `room_joined`; the room's recovery outcome if the app must hear one. */
  joined(room, data = {}) {
    const state = this._state(room);
    const expected = this._expected.delete(room);
    const sent = this._sent.get(room) ?? null;
    this._sent.delete(room);
    const live = toPosition(data.epoch, data.offset);
    let outcome = null;
    if (live === null) {
      // No history in this room, or the server could not read the stream just now (it
      // then says recovered: false; live publications bring a position again).
      state.position = null;
      const reason = data.recovered === false ? Reason.NOT_RECOVERED : Reason.NO_HISTORY;
      if (expected || sent) outcome = this._outcome(room, reason, 0, null);
    } else if (sent && data.recovered === true && sent.epoch === live.epoch) {
      // The replay (sent.offset+1 .. live.offset) follows: keep the sent position so
      // that check() delivers it instead of dropping it as already seen.
      const cur = state.position;
      if (!cur || cur.epoch !== sent.epoch || cur.offset < sent.offset) state.position = sent;
      const replayed = Number.isInteger(data.replayed) && data.replayed >= 0 ? data.replayed : 0;
      outcome = this._outcome(room, Reason.RECOVERED, replayed, sent);
    } else {
      this._move(state, live);
      if (sent) {
        // An answer of true with another epoch than the one sent is not trusted.
        const reason = data.recovered == null ? Reason.UNSUPPORTED : Reason.NOT_RECOVERED;
        outcome = this._outcome(room, reason, 0, live);
      } else if (expected) {
        outcome = this._outcome(room, Reason.NO_POSITION, 0, live);
      }
    }
    this._save();
    return outcome;
  }

  /**
   * Whether to deliver `msg`, and a recovery outcome it reveals: `{deliver, outcome}`.
   *
   * Messages without offset/epoch always pass. A publication at or below the
   * room's position (same epoch) was delivered before: dropped. One of a new
   * epoch means the server lost the stream: delivered, room not recovered.
   */
  check(msg) {
    const room = typeof msg.room === "string" ? msg.room : null;
    const position = toPosition(msg.epoch, msg.offset);
    if (room === null || position === null) return { deliver: true, outcome: null };
    const state = this._state(room);
    const last = state.position;
    let outcome = null;
    if (last && position.epoch === last.epoch) {
      if (position.offset <= last.offset) {
        this.stats.duplicates += 1;
        return { deliver: false, outcome: null };
      }
      if (position.offset > last.offset + 1) outcome = this._outcome(room, Reason.GAP, 0, position);
      state.position = position;
    } else if (last) {
      if (state.retired.includes(position.epoch)) {
        // A late publication of a replaced stream: the app was told to reload already.
        this.stats.stale += 1;
        return { deliver: false, outcome: null };
      }
      this._move(state, position);
      outcome = this._outcome(room, Reason.EPOCH_CHANGED, 0, position);
    } else {
      state.position = position;
    }
    this._save();
    return { deliver: true, outcome };
  }

  /** The ack of the recover message: forget the rooms the server ignored. */
  acked(reply) {
    const ignored = reply?.data?.ignored;
    if (Array.isArray(ignored)) for (const room of ignored) if (typeof room === "string") this.left(room);
  }

  /** The connection left `room` for good (not a disconnect): forget it. */
  left(room) {
    this._rooms.delete(room);
    this._expected.delete(room);
    this._sent.delete(room);
    this._save();
  }

  /** The connection is gone; it was in `rooms`, whose fate the next one tells. */
  disconnected(rooms) {
    for (const room of rooms) this._expected.add(room);
    this._sent.clear();
  }

  /** Forget everything, stored positions included (e.g. at logout). */
  clear() {
    this._rooms.clear();
    this._expected.clear();
    this._sent.clear();
    this._user = null;
    if (this._storage) {
      try {
        this._storage.removeItem(this._key);
      } catch {
        // storage refused (privacy mode): nothing was kept anyway
      }
    }
  }

  // --- helpers -----------------------------------------------------------------

  _state(room) {
    let state = this._rooms.get(room);
    if (!state) {
      state = { position: null, retired: [] };
      this._rooms.set(room, state);
    }
    return state;
  }

  _move(state, position) {
    const old = state.position;
    if (old && old.epoch !== position.epoch) state.retired = [...state.retired, old.epoch].slice(-RETIRED_EPOCHS);
    state.position = position;
  }

  _outcome(room, reason, replayed, position) {
    const recovered = reason === Reason.RECOVERED;
    if (recovered) this.stats.recovered += 1;
    else this.stats.notRecovered += 1;
    return { room, recovered, reason, replayed, position };
  }

  _load() {
    if (!this._storage) return;
    let saved;
    try {
      saved = JSON.parse(this._storage.getItem(this._key) ?? "null");
    } catch {
      return; // unreadable: start without positions
    }
    if (!saved || typeof saved !== "object" || typeof saved.rooms !== "object" || saved.rooms === null) return;
    this._user = typeof saved.user === "string" ? saved.user : null;
    for (const [room, value] of Object.entries(saved.rooms)) {
      const position = toPosition(value?.epoch, value?.offset);
      if (position) {
        this._rooms.set(room, { position, retired: [] });
        this._expected.add(room); // a reloaded page recovers these on its first connection
      }
    }
  }

  _save() {
    if (!this._storage) return;
    try {
      this._storage.setItem(this._key, JSON.stringify({ user: this._user, rooms: this.snapshot() }));
    } catch {
      // quota or privacy mode: positions then last as long as the page
    }
  }
}
