/**
 * User presence for the browser client: set my status, follow other users, who is online.
 *
 *   const stop = client.presence.subscribe("bob");        // follow; returns the unfollow
 *   client.presence.onChange(({ userId, presence }) => render(userId, presence.status));
 *   await client.presence.setStatus("away", { note: "lunch" });
 *
 * The server allows following users who share a room with this connection; others
 * are refused (`forbidden`, reported through `onChange` with `error`). Subscriptions
 * and a status other than the default `online` are sent again after every reconnect,
 * since they belong to the connection.
 */

/** @typedef {{userId: string, status: "online"|"away"|"offline", metadata: object, timestamp: string|null, lastSeen?: string}} Presence */

export class PresenceClient {
  constructor(client) {
    this.client = client;
    /** @type {Map<string, Presence>} */
    this.users = new Map();
    this._follows = new Map(); // userId -> number of subscribe() calls not undone
    this._handlers = new Set();
    this._mine = null; // {status, metadata} set by this page
    client.on("presence", (msg) => this._receive(msg));
    client.onState(({ state }) => {
      if (state === "connected") this._restore();
    });
  }

  /** The last known presence of a user, or undefined. */
  get(userId) {
    return this.users.get(userId);
  }

  /** The followed users whose status is not offline. */
  online() {
    return [...this.users.values()].filter((p) => p.status !== "offline");
  }

  /** Set this connection's status; resolves with what others now see of my user. */
  async setStatus(status = "online", metadata = undefined) {
    this._mine = { status, metadata };
    const data = { status, timestamp: new Date().toISOString() };
    if (this.client.userId) data.userId = this.client.userId;
    if (metadata !== undefined) data.metadata = metadata;
    const reply = await this.client.send({ type: "presence", data });
    return reply.data;
  }

  /**
   * Follow a user's presence; returns the function that stops following.
   * The returned function has a `ready` Promise resolving with the current presence
   * (rejecting with the server's error, e.g. `forbidden`).
   */
  subscribe(userId) {
    const count = this._follows.get(userId) ?? 0;
    this._follows.set(userId, count + 1);
    // While disconnected the next connection subscribes (see _restore), once.
    const send = count === 0 && this.client.state === "connected";
    const ready = send ? this._send("subscribe_presence", userId) : Promise.resolve(this.get(userId));
    ready.catch(() => {}); // reported through onChange; awaiting `ready` is optional
    let done = false;
    const stop = () => {
      if (done) return;
      done = true;
      const left = (this._follows.get(userId) ?? 1) - 1;
      if (left > 0) {
        this._follows.set(userId, left);
        return;
      }
      this._follows.delete(userId);
      this.users.delete(userId);
      if (this.client.state === "connected") this._send("unsubscribe_presence", userId).catch(() => {});
    };
    stop.ready = ready;
    return stop;
  }

  /** `fn({userId, presence, error?, users})` on every change; returns an unsubscribe function. */
  onChange(fn) {
    this._handlers.add(fn);
    return () => this._handlers.delete(fn);
  }

  async _send(action, userId) {
    try {
      const reply = await this.client.send({ type: "system", data: { action, userId } });
      return reply.data?.presence;
    } catch (error) {
      if (action === "subscribe_presence" && error?.code !== "connection_lost") {
        this._emit({ userId, presence: this.get(userId), error });
      }
      throw error;
    }
  }

  _restore() {
    // The new connection starts with no subscription and the default status.
    for (const userId of this._follows.keys()) this._send("subscribe_presence", userId).catch(() => {});
    const mine = this._mine;
    if (mine && (mine.status !== "online" || mine.metadata !== undefined)) {
      this.setStatus(mine.status, mine.metadata).catch(() => {});
    }
  }

  _receive(msg) {
    const data = msg.data;
    if (!data || typeof data.userId !== "string") return;
    const followed = this._follows.has(data.userId) || data.userId === this.client.userId;
    if (!followed) return;
    const presence = Object.freeze({ ...data });
    this.users.set(data.userId, presence);
    this._emit({ userId: data.userId, presence });
  }

  _emit(change) {
    for (const fn of [...this._handlers]) {
      try {
        fn({ ...change, users: this.users });
      } catch (error) {
        if (typeof globalThis.reportError === "function") globalThis.reportError(error);
        else console.error(error);
      }
    }
  }
}
