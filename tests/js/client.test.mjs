// Unit tests of roomcast/web/client.js with a fake WebSocket and a manual clock.
// Run: node --test tests/js/
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import {
  backoffDelay,
  CloseCode,
  DEFAULT_BACKOFF,
  RoomcastClient,
  RoomcastError,
  State,
} from "../../roomcast/web/client.js";
import { FakeClock, FakeWebSocket } from "./fakes.mjs";

let clock;
let ids;

function makeClient(options = {}) {
  ids = 0;
  return new RoomcastClient({
    url: "ws://gateway.test/websocket/connect",
    WebSocket: FakeWebSocket,
    timers: clock,
    random: () => 0.5,
    newId: () => `m${++ids}`,
    network: null,
    ...options,
  });
}

/** A connected client and its socket, welcome message received. */
function connected(options) {
  const client = makeClient(options).connect();
  const ws = FakeWebSocket.last;
  ws.serverOpen();
  ws.serverSend({
    id: "w1",
    type: "system_notification",
    data: { message: "Connected to WebSocket", connection_id: "c1", user_id: "u1" },
  });
  return { client, ws };
}

function recordStates(client) {
  const states = [];
  client.onState((e) => states.push(e.state));
  return states;
}

beforeEach(() => {
  FakeWebSocket.reset();
  clock = new FakeClock();
});

describe("backoffDelay", () => {
  test("grows 1 s × 1.5 per attempt and is capped at 30 s (no jitter when random is 0)", () => {
    const delays = [0, 1, 2, 3, 8, 9, 20].map((n) => backoffDelay(n, DEFAULT_BACKOFF, () => 0));
    assert.deepEqual(delays, [1000, 1500, 2250, 3375, 25629, 30000, 30000]);
  });

  test("jitter only shortens the delay, by at most the jitter fraction", () => {
    for (const attempt of [0, 3, 9, 40]) {
      const base = backoffDelay(attempt, DEFAULT_BACKOFF, () => 0);
      for (const r of [0, 0.25, 0.5, 0.999]) {
        const d = backoffDelay(attempt, DEFAULT_BACKOFF, () => r);
        assert.ok(d <= base && d >= Math.floor(base * (1 - DEFAULT_BACKOFF.jitter)), `${attempt} ${r} ${d}`);
      }
    }
    assert.equal(backoffDelay(0, DEFAULT_BACKOFF, () => 1), 800);
    assert.ok(backoffDelay(100, DEFAULT_BACKOFF, () => 0) <= 30000);
  });
});

describe("states and reconnect", () => {
  test("an event per change: connecting, connected, reconnecting, connected", async () => {
    const client = makeClient();
    const states = recordStates(client);
    assert.equal(client.state, State.IDLE);
    client.connect();
    FakeWebSocket.last.serverOpen();
    FakeWebSocket.last.serverClose(CloseCode.GOING_AWAY, "restart");
    await clock.advance(10_000);
    FakeWebSocket.last.serverOpen();
    assert.deepEqual(states, ["connecting", "connected", "reconnecting", "connected"]);
    assert.equal(FakeWebSocket.instances.length, 2);
  });

  test("reconnect delays use the injected random and reset after a success", async () => {
    const events = [];
    const client = makeClient({ random: () => 1 }); // maximal jitter: 0.8 × base
    client.onState((e) => e.state === "reconnecting" && events.push(e.delay));
    client.connect();
    FakeWebSocket.last.serverOpen();
    FakeWebSocket.last.serverClose(1006);
    assert.deepEqual(clock.pending, [800]);
    await clock.advance(799);
    assert.equal(FakeWebSocket.instances.length, 1, "must wait the whole delay");
    await clock.advance(1);
    assert.equal(FakeWebSocket.instances.length, 2);
    FakeWebSocket.last.serverClose(1006); // failed attempt: no open
    assert.deepEqual(clock.pending, [1200]);
    await clock.advance(1200);
    FakeWebSocket.last.serverClose(1006);
    assert.deepEqual(clock.pending, [1800]);
    await clock.advance(1800);
    FakeWebSocket.last.serverOpen(); // success resets the backoff
    FakeWebSocket.last.serverClose(3008, "slow consumer");
    assert.deepEqual(clock.pending, [800]);
    assert.deepEqual(events, [800, 800]); // state changes only; the retries in between stay "reconnecting"
  });

  for (const code of [CloseCode.POLICY_VIOLATION, CloseCode.KICKED]) {
    test(`close ${code} stops reconnecting and rejects the queue`, async () => {
      const { client, ws } = connected();
      const states = recordStates(client);
      ws.serverClose(code, "bye");
      const late = client.send({ type: "message", room: "group:a", data: {} });
      await assert.rejects(late, { code: "closed" });
      await clock.advance(120_000);
      assert.equal(FakeWebSocket.instances.length, 1);
      assert.equal(client.state, State.ERROR);
      assert.deepEqual(states, ["error"]);
      assert.deepEqual(client.lastClose, { code, reason: "bye" });
    });
  }

  for (const code of [1001, 1006, 1011, 3008, 3009]) {
    test(`close ${code} reconnects`, async () => {
      const { client, ws } = connected();
      ws.serverClose(code);
      assert.equal(client.state, State.RECONNECTING);
      await clock.advance(30_000);
      assert.equal(FakeWebSocket.instances.length, 2);
    });
  }

  test("close() goes offline, closes the socket and never reconnects", async () => {
    const { client, ws } = connected();
    client.close();
    assert.equal(client.state, State.OFFLINE);
    assert.deepEqual(ws.closedWith, { code: 1000, reason: "client closed" });
    ws.serverClose(1000); // the late close event of the old socket is ignored
    await clock.advance(120_000);
    assert.equal(FakeWebSocket.instances.length, 1);
    await assert.rejects(client.send({ type: "message", data: {} }), { code: "closed" });
  });

  test("close() during the backoff wait cancels the retry", async () => {
    const { client, ws } = connected();
    ws.serverClose(1006);
    client.close();
    await clock.advance(120_000);
    assert.equal(FakeWebSocket.instances.length, 1);
    assert.equal(client.state, State.OFFLINE);
  });

  test("a URL the browser refuses ends in the error state, with the reason", async () => {
    class Refusing {
      constructor() {
        throw new SyntaxError("The URL 'nope' is invalid.");
      }
    }
    const client = makeClient({ WebSocket: Refusing });
    const states = recordStates(client);
    const rejected = assert.rejects(client.send({ type: "presence", data: {} }), { code: "closed" });
    client.connect();
    await rejected;
    assert.deepEqual(states, ["connecting", "error"]);
    assert.equal(client.lastClose.reason, "The URL 'nope' is invalid.");
    await clock.advance(60_000);
    assert.equal(client.state, State.ERROR);
  });

  test("the browser's online event skips the rest of the wait", async () => {
    const network = new EventTarget();
    const { ws } = connected({ network });
    ws.serverClose(1006);
    assert.equal(FakeWebSocket.instances.length, 1);
    network.dispatchEvent(new Event("online"));
    assert.equal(FakeWebSocket.instances.length, 2);
    assert.deepEqual(clock.pending, []);
  });
});

describe("send, replies and the offline queue", () => {
  test("send resolves with the reply carrying the same id", async () => {
    const { client, ws } = connected();
    const p = client.send({ type: "message", room: "group:a", data: { text: "hi" } });
    assert.deepEqual(ws.sent, [{ type: "message", room: "group:a", data: { text: "hi" }, id: "m1" }]);
    ws.serverSend({ id: "other", type: "system", data: { action: "ack" } }); // not ours
    ws.ack("m1", { recipients: 2 });
    const reply = await p;
    assert.equal(reply.data.recipients, 2);
    assert.deepEqual(clock.pending, [30_000], "ack timer cleared; only the heartbeat remains");
  });

  test("an error reply rejects with its code and temporary flag", async () => {
    const { client, ws } = connected();
    const p = client.send({ type: "message", room: "group:x", data: {} });
    ws.serverSend({ id: "m1", type: "error", data: { code: "forbidden", message: "not a member", temporary: false } });
    await assert.rejects(p, (err) => {
      assert.ok(err instanceof RoomcastError);
      assert.equal(err.code, "forbidden");
      assert.equal(err.message, "not a member");
      assert.equal(err.temporary, false);
      assert.equal(err.reply.type, "error");
      return true;
    });
  });

  test("no reply within the ack timeout rejects with Message timeout", async () => {
    const { client } = connected({ ackTimeout: 10_000 });
    const p = client.send({ type: "message", room: "group:a", data: {} });
    let settled = false;
    p.catch(() => {}).finally(() => (settled = true));
    await clock.advance(9_999);
    assert.equal(settled, false);
    await clock.advance(1);
    await assert.rejects(p, { code: "timeout", message: "Message timeout" });
  });

  test("a per-send timeout overrides the default", async () => {
    const { client } = connected();
    const p = client.send({ type: "system", data: { action: "ping" } }, { timeout: 50 });
    const rejected = assert.rejects(p, { code: "timeout" });
    await clock.advance(50);
    await rejected;
  });

  test("messages sent while disconnected go out once, in order, when connected", async () => {
    const { client, ws } = connected();
    ws.serverClose(1006);
    const sends = [1, 2, 3].map((n) => client.send({ type: "message", room: "group:a", data: { n } }));
    assert.equal(client.queued, 3);
    await clock.advance(60_000); // offline time does not count against the ack timeout
    const ws2 = FakeWebSocket.last;
    assert.equal(ws2.sent.length, 0);
    ws2.serverOpen();
    assert.deepEqual(ws2.sent.map((m) => m.data.n), [1, 2, 3]);
    assert.deepEqual(ws2.sent.map((m) => m.id), ["m1", "m2", "m3"]);
    assert.equal(client.queued, 0);
    for (const id of ["m1", "m2", "m3"]) ws2.ack(id);
    await Promise.all(sends);
    // A later reconnect must not resend them.
    ws2.serverClose(1006);
    await clock.advance(30_000);
    FakeWebSocket.last.serverOpen();
    assert.equal(FakeWebSocket.instances.length, 3);
    assert.deepEqual(FakeWebSocket.last.sent, []);
  });

  test("messages sent before connect() wait for the first connection", async () => {
    const client = makeClient();
    const p = client.send({ type: "presence", data: {} });
    client.connect();
    const ws = FakeWebSocket.last;
    assert.deepEqual(ws.sent, []);
    ws.serverOpen();
    assert.deepEqual(ws.sent, [{ type: "presence", data: {}, id: "m1" }]);
    ws.serverSend({ id: "m1", type: "presence", data: { status: "online" } });
    assert.equal((await p).data.status, "online");
  });

  test("a message written but unanswered when the link drops is rejected, not resent", async () => {
    const { client, ws } = connected();
    const rejected = assert.rejects(client.send({ type: "message", room: "group:a", data: {} }), {
      code: "connection_lost",
      temporary: true,
    });
    ws.serverClose(1006);
    await rejected;
    await clock.advance(30_000);
    FakeWebSocket.last.serverOpen();
    assert.deepEqual(FakeWebSocket.last.sent, []);
  });

  test("the offline queue is bounded", async () => {
    const client = makeClient({ maxQueue: 2 });
    client.send({ type: "message", data: {} });
    client.send({ type: "message", data: {} });
    await assert.rejects(client.send({ type: "message", data: {} }), { code: "queue_full" });
    assert.equal(client.queued, 2);
  });

  test("close() rejects queued sends", async () => {
    const client = makeClient();
    const rejected = assert.rejects(client.send({ type: "message", data: {} }), { code: "closed" });
    client.close();
    await rejected;
  });

  test("send() refuses a message without a type", async () => {
    const { client } = connected();
    await assert.rejects(client.send({ data: {} }), TypeError);
  });

  test("members() asks for the room's members and returns the list", async () => {
    const { client, ws } = connected();
    const p = client.room("group:a").members();
    assert.deepEqual(ws.sent[0], { type: "system", data: { action: "members", room: "group:a" }, id: "m1" });
    ws.ack("m1", { members: [{ connection_id: "c1", user_id: "u1", character_name: "Ann" }] });
    assert.deepEqual(await p, [{ connection_id: "c1", user_id: "u1", character_name: "Ann" }]);
  });
});

describe("heartbeat", () => {
  test("pings every 30 s while pongs arrive", async () => {
    const { ws } = connected();
    await clock.advance(30_000);
    assert.deepEqual(ws.sent, [{ type: "system", data: { action: "ping" }, id: "m1" }]);
    ws.serverSend({ id: "m1", type: "system", data: { action: "pong", timestamp: "t" } });
    await clock.advance(29_999);
    assert.equal(ws.sent.length, 1);
    await clock.advance(1);
    assert.equal(ws.sent.length, 2);
    assert.equal(ws.sent[1].data.action, "ping");
  });

  test("a missing pong drops the link and reconnects without waiting for the close handshake", async () => {
    const { client, ws } = connected({ pongTimeout: 10_000 });
    const states = recordStates(client);
    await clock.advance(30_000 + 10_000);
    assert.deepEqual(ws.closedWith, { code: 4000, reason: "heartbeat timeout" });
    assert.equal(client.state, State.RECONNECTING);
    assert.equal(client.lastClose.code, 4000);
    await clock.advance(1000);
    assert.equal(FakeWebSocket.instances.length, 2);
    FakeWebSocket.last.serverOpen();
    assert.deepEqual(states, ["reconnecting", "connected"]);
  });
});

describe("incoming messages and rooms", () => {
  test("connection id and user id come from the welcome message", () => {
    const { client } = connected();
    assert.equal(client.connectionId, "c1");
    assert.equal(client.userId, "u1");
  });

  test("rooms follow room_joined, room_update and room_left, and clear on disconnect", () => {
    const { client, ws } = connected();
    const changes = [];
    client.onRooms((e) => changes.push([e.change, e.room, [...e.rooms.keys()]]));
    ws.serverSend({ type: "room_joined", room: "user:u1", data: { room: "user:u1", room_id: "user:u1", type: "personal", name: "Personal", member_count: 1 } });
    ws.serverSend({ type: "room_joined", room: "group:a", data: { room: "group:a", room_id: "group:a", type: "group", name: "Group: A", member_count: 2 } });
    ws.serverSend({ type: "room_update", room: "group:a", data: { action: "member_joined", room_id: "group:a", member_count: 3, connection_id: "c9" } });
    assert.deepEqual(client.rooms.get("group:a"), { room: "group:a", type: "group", name: "Group: A", member_count: 3 });
    ws.serverSend({ type: "room_left", room: "group:a", data: { room: "group:a", room_id: "group:a", reason: "membership_removed" } });
    ws.serverSend({ type: "room_update", data: { action: "member_left", room_id: "group:zz", member_count: 0 } }); // unknown: ignored
    assert.deepEqual([...client.rooms.keys()], ["user:u1"]);
    ws.serverClose(1001);
    assert.equal(client.rooms.size, 0);
    assert.deepEqual(changes, [
      ["joined", "user:u1", ["user:u1"]],
      ["joined", "group:a", ["user:u1", "group:a"]],
      ["updated", "group:a", ["user:u1", "group:a"]],
      ["left", "group:a", ["user:u1"]],
      ["cleared", null, []],
    ]);
  });

  test("on(type), on('*'), room handles and unsubscribe", () => {
    const { client, ws } = connected();
    const got = [];
    const stop = client.on("message", (m) => got.push(["message", m.data.text]));
    client.on("*", (m) => got.push(["*", m.type]));
    client.room("group:a").on("message", (m) => got.push(["room a", m.data.text]));
    ws.serverSend({ id: "s1", type: "message", room: "group:a", from: "c2", data: { text: "one" } });
    ws.serverSend({ id: "s2", type: "message", room: "group:b", from: "c2", data: { text: "two" } });
    stop();
    ws.serverSend({ id: "s3", type: "message", room: "group:a", from: "c2", data: { text: "three" } });
    assert.deepEqual(got, [
      ["message", "one"], ["room a", "one"], ["*", "message"],
      ["message", "two"], ["*", "message"],
      ["room a", "three"], ["*", "message"],
    ]);
  });

  test("a throwing handler does not stop the others; junk frames are ignored", (t) => {
    const reported = [];
    t.mock.method(console, "error", (e) => reported.push(e));
    const { client, ws } = connected();
    const got = [];
    client.on("notification", () => {
      throw new Error("boom");
    });
    client.on("notification", (m) => got.push(m.data.message));
    ws.serverSend("not json");
    ws.serverSend("[1,2]");
    ws.serverSend({ type: "notification", data: { message: "hello" } });
    assert.deepEqual(got, ["hello"]);
    assert.equal(reported.length, 1);
    assert.equal(reported[0].message, "boom");
  });

  test("Room.info reflects membership", () => {
    const { client, ws } = connected();
    const room = client.room("group:a");
    assert.equal(room.info, undefined);
    ws.serverSend({ type: "room_joined", data: { room: "group:a", type: "group", name: "Group: A", member_count: 1 } });
    assert.equal(room.info.name, "Group: A");
  });
});
