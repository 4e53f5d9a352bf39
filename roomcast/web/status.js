/**
 * The connection's status as one object, like the React client's useWebSocketStatus:
 * state, since when connected, the last error, and reconnect attempts.
 *
 *   client.onStatus((s) => render(s.state, s.connectionTime, s.reconnectAttempts));
 */

// String values of client.js's State (no import: client.js imports this module).
const CONNECTED = "connected";
const RECONNECTING = "reconnecting";
const OFFLINE = "offline";
const ERROR = "error";

/**
 * @typedef {object} Status
 * @property {string} state one of client.js's State values
 * @property {Date|null} connectionTime when the current connection opened
 * @property {{code: number|null, reason: string, state: string, timestamp: Date}|null} lastError
 *   the last abnormal close or refusal
 * @property {number} reconnectAttempts attempts in the current outage (0 while connected)
 * @property {number} reconnects connections opened after a loss, since the client started
 */

export class ConnectionStatus {
  /** @param {{state: string, onState: Function}} client */
  constructor(client, { now = () => new Date() } = {}) {
    this._now = now;
    this._handlers = new Set();
    this._opened = 0;
    /** @type {Status} */
    this.value = Object.freeze({
      state: client.state,
      connectionTime: null,
      lastError: null,
      reconnectAttempts: 0,
      reconnects: 0,
    });
    client.onState((event) => this._update(event));
  }

  /** `fn(status)` on every change; returns an unsubscribe function. */
  subscribe(fn) {
    this._handlers.add(fn);
    return () => this._handlers.delete(fn);
  }

  /** Another failed attempt while already reconnecting (no state change to see it by). */
  retrying(attempt, code, reason) {
    if (this.value.state !== RECONNECTING || attempt === this.value.reconnectAttempts) return;
    const lastError = Object.freeze({ code, reason, state: RECONNECTING, timestamp: this._now() });
    this._publish({ ...this.value, reconnectAttempts: attempt, lastError });
  }

  _update({ state, code = null, reason = "", attempt }) {
    const next = { ...this.value, state };
    if (state === CONNECTED) {
      this._opened += 1;
      next.connectionTime = this._now();
      next.reconnectAttempts = 0;
      next.reconnects = Math.max(0, this._opened - 1);
    } else {
      next.connectionTime = null;
    }
    if (state === RECONNECTING) next.reconnectAttempts = attempt ?? next.reconnectAttempts + 1;
    if (state === ERROR || (state === RECONNECTING && code !== 1000)) {
      next.lastError = Object.freeze({ code, reason, state, timestamp: this._now() });
    }
    if (state === OFFLINE) next.reconnectAttempts = 0;
    this._publish(next);
  }

  _publish(next) {
    this.value = Object.freeze(next);
    for (const fn of [...this._handlers]) {
      try {
        fn(this.value);
      } catch (error) {
        if (typeof globalThis.reportError === "function") globalThis.reportError(error);
        else console.error(error);
      }
    }
  }
}
