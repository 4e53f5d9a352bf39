// Test doubles for client.js: a scriptable WebSocket and a manual clock.

/** A WebSocket whose server side the test drives by hand. */
export class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 3;

  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.CONNECTING;
    this.sent = []; // parsed frames the client wrote
    this.closedWith = null; // {code, reason} when the client called close()
    FakeWebSocket.instances.push(this);
  }

  static reset() {
    FakeWebSocket.instances = [];
  }

  static get last() {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }

  send(frame) {
    if (this.readyState !== FakeWebSocket.OPEN) throw new Error("send on a socket that is not open");
    this.sent.push(JSON.parse(frame));
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = FakeWebSocket.CLOSED;
  }

  // --- the server's side ---
  serverOpen() {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.({});
  }

  serverSend(message) {
    this.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) });
  }

  serverClose(code = 1006, reason = "") {
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }

  /** Reply to the frame the client sent with `id`, as the gateway does. */
  ack(id, data = {}) {
    this.serverSend({ id, type: "system", data: { action: "ack", status: "ok", ...data } });
  }
}
FakeWebSocket.instances = [];

/** setTimeout/clearTimeout on a clock that only moves when told. */
export class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.nextId = 1;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.now + ms, ms, fn });
      return id;
    };
    this.clearTimeout = (id) => {
      this.timers.delete(id);
    };
  }

  /** Delays (ms) of the timers still pending, in creation order. */
  get pending() {
    return [...this.timers.values()].map((t) => t.ms);
  }

  /** Move time forward, running due timers in order (and settling promises between them). */
  async advance(ms) {
    const target = this.now + ms;
    for (;;) {
      await settle();
      let next = null;
      for (const [id, t] of this.timers) {
        if (t.at <= target && (next === null || t.at < next[1].at)) next = [id, t];
      }
      if (next === null) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = target;
    await settle();
  }
}

/** Let pending promise callbacks run. */
export function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}
