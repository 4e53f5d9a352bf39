// Recovery in roomcast/web/client.js (with positions.js): positions per room, the
// recover message first on reconnect, duplicates dropped by offset, outcomes per room.
// Run: node --test tests/js/
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { CloseCode, Reason, RoomcastClient } from "../../roomcast/web/client.js";
import { Positions, recoverUrl, toPosition } from "../../roomcast/web/positions.js";
import { FakeClock, FakeWebSocket } from "./fakes.mjs";

const ROOM = "group:ops";
let clock;
let ids;

function makeClient(options = {}) {
  ids = 0;
  return new RoomcastClient({
    url: "ws://gateway.test/websocket/connect",
    WebSocket: FakeWebSocket,
    timers: clock,
    random: () => 0,
    newId: () => `m${++ids}`,
    network: null,
    ...options,
  });
}

function welcome(ws, user = "u1") {
  ws.serverSend({ type: "system_notification", data: { connection_id: `c${FakeWebSocket.instances.length}`, user_id: user } });
}

function joined(ws, data = {}) {
  ws.serverSend({ type: "room_joined", room: ROOM, data: { room: ROOM, type: "group", name: "Group: ops", member_count: 1, ...data } });
}

function pub(ws, offset, epoch = "e1", room = ROOM) {
  ws.serverSend({ id: `p${offset}`, type: "message", room, data: { n: offset }, offset, epoch });
}

/** A client connected once, in ROOM at e1/0, with its recorded messages and outcomes. */
function connected(options) {
  const client = makeClient(options).connect();
  const seen = [];
  client.on("message", (m) => seen.push(m.data.n));
  client.onRecovery((o) => seen.push(o));
  const ws = FakeWebSocket.last;
  ws.serverOpen();
  welcome(ws);
  joined(ws, { epoch: "e1", offset: 0 });
  return { client, ws, seen };
}

async function reconnect(ws, code = CloseCode.GOING_AWAY) {
  ws.serverClose(code, "test");
  await clock.advance(1000);
  const next = FakeWebSocket.last;
  assert.notEqual(next, ws, "a new socket");
  return next;
}

class MemoryStorage {
  items = new Map();
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

beforeEach(() => {
  FakeWebSocket.reset();
  clock = new FakeClock();
});

describe("client recovery", () => {
  test("the first connection joins plainly and sends nothing first", () => {
    const { client, ws } = connected();
    assert.equal(ws.url, "ws://gateway.test/websocket/connect");
    assert.deepEqual(ws.sent, []);
    assert.deepEqual(client.position(ROOM), { epoch: "e1", offset: 0 });
  });

  test("a reconnect hands the positions over first, before anything queued or sent on connect", async () => {
    const { client, ws, seen } = connected();
    pub(ws, 1);
    pub(ws, 2);
    ws.serverClose(CloseCode.INSUFFICIENT_STATE, "gap");
    const queued = client.room(ROOM).send({ text: "queued" });
    const states = [];
    client.onState((e) => {
      states.push(e);
      if (e.state === "connected") client.ping().catch(() => {}); // an app reacting to "connected"
    });
    await clock.advance(1000);
    const next = FakeWebSocket.last;
    assert.equal(next.url, "ws://gateway.test/websocket/connect?recover=1");
    next.serverOpen();
    assert.deepEqual(next.sent[0], {
      type: "system",
      id: next.sent[0].id,
      data: { action: "recover", positions: { [ROOM]: { epoch: "e1", offset: 2 } } },
    });
    assert.deepEqual(next.sent.slice(1).map((f) => f.data), [{ action: "ping" }, { text: "queued" }]);
    assert.equal(states.at(-1).recovering, true);
    welcome(next);
    joined(next, { epoch: "e1", offset: 4, recovered: true, replayed: 2 });
    pub(next, 3);
    pub(next, 4);
    next.ack(next.sent[0].id, { action_requested: "recover", rooms: { [ROOM]: { recovered: true, replayed: 2 } } });
    next.ack(next.sent[2].id);
    await queued;
    assert.deepEqual(seen, [1, 2, { room: ROOM, recovered: true, reason: Reason.RECOVERED, replayed: 2, position: { epoch: "e1", offset: 2 } }, 3, 4]);
  });

  test("replayed and live duplicates reach the handlers once", async () => {
    const { client, ws, seen } = connected();
    pub(ws, 1);
    const next = await reconnect(ws);
    next.serverOpen();
    welcome(next);
    joined(next, { epoch: "e1", offset: 3, recovered: true, replayed: 2 });
    for (const n of [2, 3, 1, 2, 3, 4, 4]) pub(next, n);
    assert.deepEqual(seen.filter((x) => typeof x === "number"), [1, 2, 3, 4]);
    assert.equal(client._positions.stats.duplicates, 4);
  });

  test("a room that could not recover is reported, on the client and on its Room", async () => {
    const { client, ws, seen } = connected();
    const roomOutcomes = [];
    client.room(ROOM).onRecovery((o) => roomOutcomes.push(o));
    client.room("group:other").onRecovery((o) => roomOutcomes.push(o));
    pub(ws, 1);
    const next = await reconnect(ws, CloseCode.SLOW_CONSUMER);
    next.serverOpen();
    welcome(next);
    joined(next, { epoch: "e1", offset: 9, recovered: false });
    pub(next, 10);
    const outcome = { room: ROOM, recovered: false, reason: Reason.NOT_RECOVERED, replayed: 0, position: { epoch: "e1", offset: 9 } };
    assert.deepEqual(seen, [1, outcome, 10]);
    assert.deepEqual(roomOutcomes, [outcome]);
    assert.deepEqual(client.room(ROOM).position, { epoch: "e1", offset: 10 });
  });

  test("a new epoch seen live is reported as not recovered; the old stream's stragglers are dropped", () => {
    const { ws, seen } = connected();
    pub(ws, 1);
    pub(ws, 1, "e2");
    pub(ws, 2, "e1");
    pub(ws, 2, "e2");
    assert.deepEqual(seen, [1, 1, { room: ROOM, recovered: false, reason: Reason.EPOCH_CHANGED, replayed: 0, position: { epoch: "e2", offset: 1 } }, 2]);
  });

  test("rooms without history are reported not recovered after a reconnect", async () => {
    const client = makeClient().connect();
    const outcomes = [];
    client.onRecovery((o) => outcomes.push(o));
    const ws = FakeWebSocket.last;
    ws.serverOpen();
    welcome(ws);
    joined(ws); // no epoch, no offset
    const next = await reconnect(ws);
    assert.equal(next.url, "ws://gateway.test/websocket/connect", "no positions: nothing to recover");
    next.serverOpen();
    assert.deepEqual(next.sent, []);
    welcome(next);
    joined(next);
    assert.deepEqual(outcomes, [{ room: ROOM, recovered: false, reason: Reason.NO_HISTORY, replayed: 0, position: null }]);
  });

  test("recover: false reconnects plainly", async () => {
    const { ws, seen } = connected({ recover: false });
    pub(ws, 1);
    const next = await reconnect(ws);
    assert.equal(next.url, "ws://gateway.test/websocket/connect");
    next.serverOpen();
    assert.deepEqual(next.sent, []);
    welcome(next);
    joined(next, { epoch: "e1", offset: 5 });
    assert.equal(seen.at(-1).reason, Reason.NO_POSITION);
  });

  test("rooms the server ignored (left while offline) are forgotten", async () => {
    const { client, ws } = connected();
    pub(ws, 1);
    const next = await reconnect(ws);
    next.serverOpen();
    welcome(next);
    next.ack(next.sent[0].id, { action_requested: "recover", rooms: {}, ignored: [ROOM] });
    assert.equal(client.position(ROOM), undefined);
    assert.deepEqual(client.positions, {});
  });

  test("room_left forgets the room's position", () => {
    const { client, ws } = connected();
    ws.serverSend({ type: "room_left", room: ROOM, data: { room: ROOM, reason: "membership" } });
    assert.deepEqual(client.positions, {});
  });
});

describe("positions across a page reload (persistPositions)", () => {
  test("a new page recovers from the stored positions on its first connection", () => {
    const storage = new MemoryStorage();
    const { ws } = connected({ persistPositions: true, storage });
    pub(ws, 1);
    pub(ws, 2);
    // The page reloads: a new client with the same storage.
    const client = makeClient({ persistPositions: true, storage }).connect();
    const seen = [];
    client.onRecovery((o) => seen.push(o));
    client.on("message", (m) => seen.push(m.data.n));
    const next = FakeWebSocket.last;
    assert.equal(next.url, "ws://gateway.test/websocket/connect?recover=1");
    next.serverOpen();
    assert.deepEqual(next.sent[0].data.positions, { [ROOM]: { epoch: "e1", offset: 2 } });
    welcome(next);
    joined(next, { epoch: "e1", offset: 3, recovered: true, replayed: 1 });
    pub(next, 3);
    assert.deepEqual(seen, [{ room: ROOM, recovered: true, reason: Reason.RECOVERED, replayed: 1, position: { epoch: "e1", offset: 2 } }, 3]);
  });

  test("positions stored by another user are dropped when the welcome names this one", () => {
    const storage = new MemoryStorage();
    const { ws } = connected({ persistPositions: true, storage });
    pub(ws, 1);
    const client = makeClient({ persistPositions: true, storage }).connect();
    const seen = [];
    client.onRecovery((o) => seen.push(o));
    client.on("message", (m) => seen.push(m.data.n));
    const next = FakeWebSocket.last;
    next.serverOpen();
    welcome(next, "someone-else");
    // The server may still have replayed the shared room: none of it is this user's to see
    // as missed, and no outcome is reported for a room this user was never in.
    joined(next, { epoch: "e1", offset: 1, recovered: true, replayed: 1 });
    pub(next, 1);
    pub(next, 2);
    assert.deepEqual(seen, [2]);
  });

  test("without persistPositions nothing is stored; forgetPositions clears the storage", () => {
    const storage = new MemoryStorage();
    const { ws } = connected({ storage });
    pub(ws, 1);
    assert.equal(storage.items.size, 0);
    const stored = connected({ persistPositions: true, storage });
    pub(stored.ws, 1);
    assert.equal(storage.items.size, 1);
    stored.client.forgetPositions();
    assert.equal(storage.items.size, 0);
  });

  test("unreadable storage is ignored", () => {
    const storage = new MemoryStorage();
    storage.setItem("roomcast:positions:ws://gateway.test/websocket/connect", "{not json");
    const client = makeClient({ persistPositions: true, storage }).connect();
    assert.equal(FakeWebSocket.last.url, "ws://gateway.test/websocket/connect");
    assert.deepEqual(client.positions, {});
  });
});

describe("Positions (pure)", () => {
  test("validates wire positions", () => {
    assert.deepEqual(toPosition("e", 0), { epoch: "e", offset: 0 });
    for (const [e, o] of [["", 1], ["e", -1], ["e", "1"], [3, 1], ["e", 1.5], [null, null]]) {
      assert.equal(toPosition(e, o), null);
    }
  });

  test("recoverUrl keeps the query and sets recover once", () => {
    assert.equal(recoverUrl("ws://h/ws"), "ws://h/ws?recover=1");
    assert.equal(recoverUrl("wss://h/ws?a=1&recover=0"), "wss://h/ws?a=1&recover=1");
  });

  test("a recovered room keeps its position for the replay, never moving it back", () => {
    const p = new Positions();
    p.joined(ROOM, { epoch: "e1", offset: 7 });
    p.disconnected([ROOM]);
    p.recoverMessage();
    assert.deepEqual(p.check({ room: ROOM, epoch: "e1", offset: 9 }), { deliver: true, outcome: { room: ROOM, recovered: false, reason: Reason.GAP, replayed: 0, position: { epoch: "e1", offset: 9 } } });
    const outcome = p.joined(ROOM, { epoch: "e1", offset: 10, recovered: true, replayed: 3 });
    assert.equal(outcome.recovered, true);
    assert.deepEqual([8, 9, 10].map((offset) => p.check({ room: ROOM, epoch: "e1", offset }).deliver), [false, false, true]);
  });

  test("a stream the server could not read is not recovered; live publications bring a position", () => {
    const p = new Positions();
    p.joined(ROOM, { epoch: "e1", offset: 7 });
    p.disconnected([ROOM]);
    p.recoverMessage();
    assert.deepEqual(p.joined(ROOM, { recovered: false, replayed: 0 }), { room: ROOM, recovered: false, reason: Reason.NOT_RECOVERED, replayed: 0, position: null });
    assert.deepEqual(p.check({ room: ROOM, epoch: "e1", offset: 9 }), { deliver: true, outcome: null });
    assert.deepEqual(p.get(ROOM), { epoch: "e1", offset: 9 });
  });

  test("recovered: true with another epoch is not trusted; no answer means unsupported", () => {
    const p = new Positions();
    p.joined(ROOM, { epoch: "e1", offset: 7 });
    p.joined("group:b", { epoch: "b", offset: 1 });
    p.disconnected([ROOM, "group:b"]);
    p.recoverMessage();
    assert.equal(p.joined(ROOM, { epoch: "e2", offset: 1, recovered: true, replayed: 1 }).reason, Reason.NOT_RECOVERED);
    assert.equal(p.joined("group:b", { epoch: "b", offset: 4 }).reason, Reason.UNSUPPORTED);
    assert.equal(p.joined("group:new", { epoch: "n", offset: 1 }), null, "a first join reports nothing");
  });
});
