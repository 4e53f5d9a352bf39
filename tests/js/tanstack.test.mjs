// Unit tests of roomcast/web/tanstack.js against a recording QueryClient.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { RoomcastClient } from "../../roomcast/web/client.js";
import { defaultInvalidations, defaultRoomKeys, invalidateOnMessages } from "../../roomcast/web/tanstack.js";
import { FakeClock, FakeWebSocket } from "./fakes.mjs";

class RecordingQueryClient {
  calls = [];
  invalidateQueries(filters) {
    this.calls.push(filters === undefined ? "all" : filters.queryKey);
  }
}

let client;
let ws;
let queries;
let clock;

beforeEach(() => {
  FakeWebSocket.reset();
  clock = new FakeClock();
  client = new RoomcastClient({
    url: "ws://gateway.test/websocket/connect",
    WebSocket: FakeWebSocket,
    timers: clock,
    random: () => 0,
    network: null,
  }).connect();
  ws = FakeWebSocket.last;
  ws.serverOpen();
  queries = new RecordingQueryClient();
});

test("each message type invalidates the React client's query keys", () => {
  invalidateOnMessages(client, queries);
  ws.serverSend({ type: "user_profile_update", data: { user_id: "u1", profile: {} } });
  ws.serverSend({ type: "group_membership_change", data: { user_id: "u1", group_id: "g", joined: true } });
  ws.serverSend({ type: "message", room: "thread:t9", data: { text: "x" } });
  ws.serverSend({ type: "room_update", room: "group:a", data: { action: "member_joined", room_id: "group:a", member_count: 2 } });
  ws.serverSend({ type: "notification", data: { type: "new_message" } });
  ws.serverSend({ type: "notification", data: { type: "task_update" } });
  ws.serverSend({ type: "presence", data: { userId: "u2", status: "online" } });
  assert.deepEqual(queries.calls, [
    ["users"], ["auth", "current-user"],
    ["groups"], ["users"],
    ["chat", "messages", "t9"], ["chat", "threads"],
    ["chat", "threads", "group:a"],
    ["chat", "threads"],
    ["scheduler"],
    ["chat", "contacts"],
  ]);
});

test("messages the table does not cover invalidate nothing", () => {
  invalidateOnMessages(client, queries);
  ws.serverSend({ type: "user_profile_update", data: {} }); // no user id
  ws.serverSend({ type: "message", room: "group:a", data: { text: "x" } }); // not a thread
  ws.serverSend({ type: "notification", data: { message: "hi" } }); // no known type
  ws.serverSend({ type: "presence", data: { status: "online" } });
  ws.serverSend({ type: "heartbeat", data: {} });
  assert.deepEqual(queries.calls, []);
});

test("a custom map, static or computed, and the stop function", () => {
  const stop = invalidateOnMessages(client, queries, {
    ...defaultInvalidations,
    custom_event: (msg) => [["orders", msg.data.order_id]],
    notification: [["inbox"]],
  });
  ws.serverSend({ type: "custom_event", data: { order_id: 7 } });
  ws.serverSend({ type: "notification", data: { message: "hi" } });
  stop();
  ws.serverSend({ type: "notification", data: { message: "again" } });
  assert.deepEqual(queries.calls, [["orders", 7], ["inbox"]]);
});

test("a reconnect invalidates everything; the first connect does not", async () => {
  invalidateOnMessages(client, queries);
  ws.serverClose(1001);
  assert.deepEqual(queries.calls, []);
  await clock.advance(1000);
  FakeWebSocket.last.serverOpen();
  assert.deepEqual(queries.calls, ["all"]);
});

test("invalidateOnReconnect: false leaves queries alone on reconnect", async () => {
  invalidateOnMessages(client, queries, defaultInvalidations, { invalidateOnReconnect: false });
  ws.serverClose(1001);
  await clock.advance(1000);
  FakeWebSocket.last.serverOpen();
  assert.deepEqual(queries.calls, []);
});

// --- recovery ----------------------------------------------------------------

const ROOM = "group:ops";

function joinWithHistory(socket, data = {}) {
  socket.serverSend({ type: "room_joined", room: ROOM, data: { room: ROOM, type: "group", epoch: "e1", offset: 0, ...data } });
}

async function reconnectWithPositions() {
  joinWithHistory(ws);
  ws.serverSend({ type: "message", room: ROOM, data: {}, offset: 1, epoch: "e1" });
  ws.serverClose(1001);
  await clock.advance(1000);
  const next = FakeWebSocket.last;
  next.serverOpen();
  return next;
}

test("a room that did not recover invalidates every key of the table; a recovered one nothing", async () => {
  invalidateOnMessages(client, queries);
  const next = await reconnectWithPositions();
  assert.deepEqual(queries.calls, [], "positions were handed over: no blanket invalidation");
  joinWithHistory(next, { offset: 1, recovered: true, replayed: 0 });
  assert.deepEqual(queries.calls, []);
  next.serverClose(1001);
  await clock.advance(1000);
  FakeWebSocket.last.serverOpen();
  joinWithHistory(FakeWebSocket.last, { epoch: "e2", offset: 5, recovered: false });
  assert.deepEqual(queries.calls, defaultRoomKeys(ROOM));
  assert.deepEqual(defaultRoomKeys("thread:t1")[0], ["chat", "messages", "t1"]);
});

test("with a map of its own, a room that did not recover invalidates every query", async () => {
  invalidateOnMessages(client, queries, { custom_event: () => [["orders"]] });
  const next = await reconnectWithPositions();
  joinWithHistory(next, { epoch: "e2", recovered: false });
  assert.deepEqual(queries.calls, ["all"]);
});

test("roomKeys narrows what a lost room invalidates", async () => {
  invalidateOnMessages(client, queries, defaultInvalidations, { roomKeys: (room) => [["rooms", room]] });
  ws.serverSend({ type: "message", room: ROOM, data: {}, offset: 3, epoch: "e1" });
  ws.serverSend({ type: "message", room: ROOM, data: {}, offset: 1, epoch: "e2" }); // a new epoch, live
  assert.deepEqual(queries.calls, [["rooms", ROOM]]);
});

test("invalidateOnReconnect 'all' invalidates everything even when rooms recover", async () => {
  invalidateOnMessages(client, queries, defaultInvalidations, { invalidateOnReconnect: "all" });
  const next = await reconnectWithPositions();
  joinWithHistory(next, { offset: 1, recovered: true, replayed: 0 });
  assert.deepEqual(queries.calls, ["all"]);
});
