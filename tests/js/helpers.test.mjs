// client.js helpers: joinRoom/leaveRoom, the status object, presence and recent messages.
// Run: node --test tests/js/
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { RoomcastClient, State } from "../../roomcast/web/client.js";
import { FakeClock, FakeWebSocket, settle } from "./fakes.mjs";

let clock;
let ids;

function connected(options = {}) {
  ids = 0;
  const client = new RoomcastClient({
    url: "ws://gateway.test/websocket/connect",
    WebSocket: FakeWebSocket,
    timers: clock,
    random: () => 0,
    newId: () => `m${++ids}`,
    network: null,
    recover: false,
    ...options,
  }).connect();
  const ws = FakeWebSocket.last;
  ws.serverOpen();
  ws.serverSend({ id: "w", type: "system_notification", data: { connection_id: "c1", user_id: "alice" } });
  return { client, ws };
}

const lastSent = (ws) => ws.sent[ws.sent.length - 1];

beforeEach(() => {
  FakeWebSocket.reset();
  clock = new FakeClock();
});

describe("joinRoom / leaveRoom", () => {
  test("send the React client's system join and leave and resolve with the ack", async () => {
    const { client, ws } = connected();
    const joined = client.joinRoom("group:red");
    assert.deepEqual(lastSent(ws), { id: "m1", type: "system", data: { action: "join", room: "group:red" } });
    ws.ack("m1", { action_requested: "join", room: "group:red", joined: true });
    assert.equal((await joined).data.joined, true);
    const left = client.leaveRoom("group:red");
    assert.deepEqual(lastSent(ws).data, { action: "leave", room: "group:red" });
    ws.serverSend({ id: "m2", type: "error", data: { code: "forbidden", message: "no" } });
    await assert.rejects(left, (e) => e.code === "forbidden");
  });
});

describe("status", () => {
  test("connectionTime, lastError and reconnect attempts follow the connection", async () => {
    const { client, ws } = connected();
    const seen = [];
    client.onStatus((s) => seen.push(s));
    assert.equal(client.status.state, State.CONNECTED);
    assert.ok(client.status.connectionTime instanceof Date);
    assert.equal(client.status.lastError, null);

    ws.serverClose(1006, "");
    assert.equal(client.status.state, State.RECONNECTING);
    assert.equal(client.status.connectionTime, null);
    assert.equal(client.status.reconnectAttempts, 1);
    assert.deepEqual([client.status.lastError.code, client.status.lastError.state], [1006, "reconnecting"]);

    await clock.advance(1000);
    FakeWebSocket.last.serverClose(1006, "");
    assert.equal(client.status.reconnectAttempts, 2);
    await clock.advance(1500);
    FakeWebSocket.last.serverOpen();
    assert.equal(client.status.state, State.CONNECTED);
    assert.equal(client.status.reconnectAttempts, 0);
    assert.equal(client.status.reconnects, 1);
    assert.ok(client.status.connectionTime instanceof Date);
    assert.equal(client.status.lastError.code, 1006); // kept until the next error
    assert.deepEqual(seen.map((s) => [s.state, s.reconnectAttempts]), [["reconnecting", 1], ["reconnecting", 2], ["connected", 0]]);
    assert.throws(() => { client.status.state = "x"; }); // frozen snapshots
  });

  test("a refusal for good is the last error", () => {
    const { client, ws } = connected();
    ws.serverClose(3500, "kicked");
    assert.equal(client.status.state, State.ERROR);
    assert.deepEqual([client.status.lastError.code, client.status.lastError.reason], [3500, "kicked"]);
  });
});

describe("presence", () => {
  test("subscribe sends the React client's action once per user and tracks the events", async () => {
    const { client, ws } = connected();
    const changes = [];
    client.presence.onChange((c) => changes.push([c.userId, c.presence?.status, c.error?.code]));
    const stop1 = client.presence.subscribe("bob");
    const stop2 = client.presence.subscribe("bob");
    assert.deepEqual(ws.sent.filter((m) => m.data?.action === "subscribe_presence").map((m) => m.data.userId), ["bob"]);
    ws.ack("m1", { userId: "bob", subscribed: true, presence: { userId: "bob", status: "online" } });
    assert.deepEqual(await stop1.ready, { userId: "bob", status: "online" });
    ws.serverSend({ id: "e1", type: "presence", data: { userId: "bob", status: "online", metadata: {} } });
    ws.serverSend({ id: "e2", type: "presence", data: { userId: "bob", status: "away", metadata: { note: "x" } } });
    ws.serverSend({ id: "e3", type: "presence", data: { userId: "mallory", status: "online" } }); // not followed
    assert.equal(client.presence.get("bob").status, "away");
    assert.deepEqual(client.presence.online().map((p) => p.userId), ["bob"]);
    assert.equal(client.presence.get("mallory"), undefined);

    stop1();
    assert.equal(ws.sent.filter((m) => m.data?.action === "unsubscribe_presence").length, 0); // still followed
    stop2();
    stop2(); // idempotent
    assert.deepEqual(ws.sent.filter((m) => m.data?.action === "unsubscribe_presence").map((m) => m.data.userId), ["bob"]);
    assert.equal(client.presence.get("bob"), undefined);
    assert.deepEqual(changes, [["bob", "online", undefined], ["bob", "away", undefined]]);
  });

  test("a forbidden subscription is reported", async () => {
    const { client, ws } = connected();
    const errors = [];
    client.presence.onChange((c) => c.error && errors.push([c.userId, c.error.code]));
    const stop = client.presence.subscribe("stranger");
    ws.serverSend({ id: "m1", type: "error", data: { code: "forbidden", message: "no shared room" } });
    await assert.rejects(stop.ready, (e) => e.code === "forbidden");
    assert.deepEqual(errors, [["stranger", "forbidden"]]);
  });

  test("setStatus sends status and metadata, and both come back after a reconnect", async () => {
    const { client, ws } = connected();
    client.presence.subscribe("bob");
    const set = client.presence.setStatus("away", { note: "lunch" });
    const sent = lastSent(ws);
    assert.equal(sent.type, "presence");
    assert.deepEqual([sent.data.userId, sent.data.status, sent.data.metadata], ["alice", "away", { note: "lunch" }]);
    assert.equal(typeof sent.data.timestamp, "string");
    ws.serverSend({ id: sent.id, type: "presence", data: { userId: "alice", status: "away", metadata: { note: "lunch" } } });
    assert.equal((await set).status, "away");
    assert.equal(client.presence.get("alice").status, "away"); // my own, from the reply

    ws.serverClose(1001, "restart");
    await clock.advance(1000);
    const next = FakeWebSocket.last;
    next.serverOpen();
    await settle();
    const again = next.sent.map((m) => [m.type, m.data?.action ?? m.data?.status, m.data?.userId]);
    assert.deepEqual(again, [["system", "subscribe_presence", "bob"], ["presence", "away", "alice"]]);
  });
});

describe("recent messages", () => {
  test("filled from the room's history on join, then live, without duplicates", async () => {
    const { client, ws } = connected({ recent: 3 });
    const changes = [];
    client.onRecent(({ room, messages }) => changes.push([room, messages.map((m) => m.data.text)]));
    ws.serverSend({ id: "j", type: "room_joined", room: "group:red", data: { room: "group:red", offset: 5, epoch: "e" } });
    const request = lastSent(ws);
    assert.deepEqual(request.data, { action: "history", room: "group:red", limit: 3, reverse: true });
    // A live message arrives before the history answer.
    ws.serverSend({ id: "p6", type: "message", room: "group:red", offset: 6, epoch: "e", data: { text: "six" } });
    ws.ack(request.id, {
      room: "group:red", epoch: "e", offset: 6,
      publications: [6, 5, 4, 3].map((n) => ({ id: `p${n}`, type: "message", room: "group:red", offset: n, epoch: "e", data: { text: `m${n}` } })),
    });
    await settle();
    assert.deepEqual(client.recent("group:red").map((m) => m.id), ["p4", "p5", "p6"]);
    ws.serverSend({ id: "p7", type: "message", room: "group:red", offset: 7, epoch: "e", data: { text: "seven" } });
    assert.deepEqual(client.recent("group:red").map((m) => m.id), ["p5", "p6", "p7"]);
    assert.deepEqual(client.recent("group:blue"), []);
    assert.equal(changes.length, 3);
  });

  test("a server without the history action is asked once", async () => {
    const { client, ws } = connected({ recent: 10 });
    ws.serverSend({ id: "j1", type: "room_joined", room: "group:a", data: { room: "group:a" } });
    ws.serverSend({ id: lastSent(ws).id, type: "error", data: { code: "invalid_field", message: "system data.action must be one of ..." } });
    await settle();
    ws.serverSend({ id: "j2", type: "room_joined", room: "group:b", data: { room: "group:b" } });
    assert.equal(ws.sent.filter((m) => m.data?.action === "history").length, 1);
    ws.serverSend({ id: "x", type: "message", room: "group:b", data: { text: "live" } });
    ws.serverSend({ id: "y", type: "room_update", room: "group:b", data: { member_count: 2 } });
    assert.deepEqual(client.recent("group:b").map((m) => m.id), ["x"]);
  });

  test("off by default: no history request", () => {
    const { client, ws } = connected();
    ws.serverSend({ id: "j1", type: "room_joined", room: "group:a", data: { room: "group:a" } });
    assert.equal(ws.sent.length, 0);
    assert.deepEqual(client.recent("group:a"), []);
    assert.throws(() => client.onRecent(() => {}));
  });
});
