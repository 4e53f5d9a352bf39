// A small app on roomcast's React hooks: a room's messages, another user's presence, status.
import { createElement as h, useEffect } from "react";
import {
  usePresence, useRoom, useWebSocket, useWebSocketStatus, WebSocketProvider,
} from "/websocket/react.js";

const params = new URLSearchParams(location.search);
const ROOM = params.get("room");
const ME = params.get("me");
const WATCH = params.get("watch");

function Status() {
  const s = useWebSocketStatus();
  return h("p", {
    id: "status",
    "data-state": s.connectionState,
    "data-reconnects": String(s.reconnects),
    "data-since": s.connectionTime ? s.connectionTime.toISOString() : "",
    "data-error": s.lastError ? String(s.lastError.code) : "",
  }, s.connectionState);
}

function Rooms() {
  const { rooms, isConnected } = useWebSocket();
  return h("p", { id: "rooms", "data-connected": String(isConnected) }, [...rooms].sort().join(" "));
}

function Room() {
  const { isJoined, messages, sendToRoom } = useRoom(ROOM);
  return h("section", null,
    h("p", { id: "joined" }, String(isJoined)),
    h("button", { id: "send", onClick: () => sendToRoom({ type: "message", data: { text: `hello from ${ME}` } }) }, "send"),
    h("ul", { id: "messages" }, messages.map((m) => h("li", { key: m.id }, m.data?.text ?? ""))));
}

function Presence() {
  const { presence, subscribeToUser, updatePresence, myStatus } = usePresence({ userId: ME });
  useEffect(() => subscribeToUser(WATCH), [subscribeToUser]);
  const other = presence.get(WATCH);
  return h("section", null,
    h("p", { id: "presence" }, other ? other.status : "unknown"),
    h("p", { id: "my-status" }, myStatus ?? "none"),
    h("button", { id: "away", onClick: () => updatePresence("away", { note: "brb" }) }, "away"),
    h("button", { id: "online", onClick: () => updatePresence("online") }, "online"));
}

function App() {
  return h("main", null, h(Status), h(Rooms), h(Room), h(Presence));
}

globalThis.ReactDOM.createRoot(document.getElementById("root")).render(
  h(WebSocketProvider, null, h(App)),
);
