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

test("each message type invalidates its query keys", () => {
  invalidateOnMessages(client, queries);
  ws.serverSend({ type: "user_profile_update", data: { user_id: "u1", profile: {} } });
  ws.serverSend({ type: "group_membership_change", data: { user_id: "u1", group_id: "g", joined: true } });
  ws.serverSend({ type: "message", room: "group:a", data: { text: "x" } });
  ws.serverSend({ type: "room_update", data: { action: "member_joined", room_id: "group:a", member_count: 2 } });
  ws.serverSend({ type: "heartbeat", data: {} }); // no rule: nothing
  assert.deepEqual(queries.calls, [
    ["user", "u1"], ["profile", "u1"],
    ["groups"], ["user", "u1"],
    ["messages", "group:a"],
    ["rooms"], ["room", "group:a"],
  ]);
});

test("a missing id widens the key to the family instead of matching undefined", () => {
  invalidateOnMessages(client, queries);
  ws.serverSend({ type: "user_profile_update", data: {} });
  assert.deepEqual(queries.calls, [["user"], ["profile"]]);
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
