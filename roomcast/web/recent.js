/**
 * The last messages of each room, for rendering a room at once: filled from the
 * server's room history when the connection joins the room (the `system` `history`
 * action), then from live messages. Duplicates (same `id`) are kept once.
 *
 *   const client = new RoomcastClient({ recent: 50 });
 *   client.onRecent(({ room, messages }) => render(room, messages));
 */

export const RECENT_TYPES = Object.freeze(["message", "custom_event"]);

export class RecentMessages {
  /**
   * @param {object} client a RoomcastClient
   * @param {{limit?: number, types?: string[], history?: boolean}} [options]
   */
  constructor(client, { limit = 50, types = RECENT_TYPES, history = true } = {}) {
    this.client = client;
    this.limit = limit;
    this.types = new Set(types);
    /** False once the server answered that it has no `history` action. */
    this.historyAvailable = history;
    /** @type {Map<string, object[]>} oldest first */
    this.rooms = new Map();
    this._handlers = new Set();
    client.on("*", (msg) => {
      if (msg.room && this.types.has(msg.type)) this._merge(msg.room, [msg], false);
    });
    client.onRooms(({ change, room }) => {
      if (change === "joined" && this.historyAvailable) this._fill(room);
    });
  }

  /** The room's recent messages, oldest first. */
  get(room) {
    return this.rooms.get(room) ?? [];
  }

  /** `fn({room, messages})` when a room's list changes; returns an unsubscribe function. */
  onChange(fn) {
    this._handlers.add(fn);
    return () => this._handlers.delete(fn);
  }

  async _fill(room) {
    let reply;
    try {
      // The newest page (reverse: newest first); a room without history answers not_found.
      reply = await this.client.send({
        type: "system",
        data: { action: "history", room, limit: this.limit, reverse: true },
      });
    } catch (error) {
      // A server without history answers invalid_field (unknown action): stop asking.
      if (error?.code === "invalid_field") this.historyAvailable = false;
      return;
    }
    const stored = reply.data?.publications;
    if (Array.isArray(stored)) {
      const oldestFirst = stored.filter((m) => this.types.has(m?.type)).reverse();
      this._merge(room, oldestFirst, true);
    }
  }

  _merge(room, incoming, older) {
    const list = this.rooms.get(room) ?? [];
    const seen = new Set(list.map((m) => m.id));
    const fresh = incoming.filter((m) => m && !seen.has(m.id) && (seen.add(m.id), true));
    if (fresh.length === 0) return;
    let merged = older ? [...fresh, ...list] : [...list, ...fresh];
    if (merged.some((m) => typeof m.offset === "number")) {
      // Stored and live publications of a history room sort by offset; others keep arrival order.
      merged = merged
        .map((m, i) => [m, i])
        .sort(([a, i], [b, j]) => (a.offset ?? Infinity) - (b.offset ?? Infinity) || i - j)
        .map(([m]) => m);
    }
    if (merged.length > this.limit) merged = merged.slice(merged.length - this.limit);
    this.rooms.set(room, merged);
    for (const fn of [...this._handlers]) {
      try {
        fn({ room, messages: merged });
      } catch (error) {
        if (typeof globalThis.reportError === "function") globalThis.reportError(error);
        else console.error(error);
      }
    }
  }
}
