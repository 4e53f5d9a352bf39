// Unit tests of roomcast/web/tanstack.js against a recording QueryClient.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { RoomcastClient } from "../../roomcast/web/client.js";
import { defaultInvalidations, invalidateOnMessages } from "../../roomcast/web/tanstack.js";
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
