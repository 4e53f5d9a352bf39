/**
 * React hooks for roomcast with the names and return shapes of the Go gateway's React
 * client (`WebSocketProvider`, `useWebSocket`, `useRoom`, `usePersonalRoom`,
 * `usePresence`, `useWebSocketStatus`), on top of client.js. An app switches by
 * changing its import:
 *
 *   import { WebSocketProvider, useRoom, usePresence } from "/websocket/react.js";
 *
 * React is the app's own: this module imports the bare specifier "react", which a
 * bundler resolves to the app's copy (or an import map names, without a bundler).
 */

import * as React from "react";

import { RoomcastClient } from "./client.js";

const { createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState } = React;

/** The React client's connection states. */
export const ConnectionState = Object.freeze({
  CONNECTING: "CONNECTING",
  CONNECTED: "CONNECTED",
  RECONNECTING: "RECONNECTING",
  DISCONNECTED: "DISCONNECTED",
  ERROR: "ERROR",
});

const FROM_CLIENT = {
  idle: ConnectionState.DISCONNECTED,
  connecting: ConnectionState.CONNECTING,
  connected: ConnectionState.CONNECTED,
  reconnecting: ConnectionState.RECONNECTING,
  offline: ConnectionState.DISCONNECTED,
  error: ConnectionState.ERROR,
};

/** Messages kept per room by `useRoom`, as the React client does. */
export const ROOM_MESSAGES = 100;
const SHOWN_TYPES = new Set(["message", "custom_event"]);

const WebSocketContext = createContext(undefined);

function useClientValue(client, subscribe, read) {
  const [value, setValue] = useState(() => read(client));
  useEffect(() => {
    setValue(read(client));
    return subscribe(client, () => setValue(read(client)));
  }, [client]); // eslint-disable-line react-hooks/exhaustive-deps
  return value;
}

const readRooms = (client) => [...client.rooms.keys()];
const readStatus = (client) => client.status;

/**
 * Owns one RoomcastClient for the tree below it.
 *
 * Props: `url` (default: this page's host), `autoConnect` (true), `client` (use an
 * existing RoomcastClient instead; it is then not closed on unmount), `options`
 * (RoomcastClient options; `recent` defaults to ROOM_MESSAGES).
 */
export function WebSocketProvider({ children, url, autoConnect = true, client: given, options }) {
  const owned = useRef(null);
  if (!given && owned.current === null) {
    owned.current = new RoomcastClient({ recent: ROOM_MESSAGES, ...options, ...(url ? { url } : {}) });
  }
  const client = given ?? owned.current;

  useEffect(() => {
    if (autoConnect) client.connect();
    return () => {
      if (!given) client.close();
    };
  }, [client, autoConnect, given]);

  const status = useClientValue(client, (c, fn) => c.onStatus(fn), readStatus);
  const rooms = useClientValue(client, (c, fn) => c.onRooms(fn), readRooms);
  const connectionState = FROM_CLIENT[status.state] ?? ConnectionState.DISCONNECTED;

  const sendMessage = useCallback((message) => client.send(message), [client]);
  const joinRoom = useCallback((room) => client.joinRoom(room).then(() => undefined), [client]);
  const leaveRoom = useCallback((room) => client.leaveRoom(room).then(() => undefined), [client]);
  const subscribe = useCallback(
    (room, handler) => client.on("*", (msg) => {
      if (msg.room === room) handler(msg);
    }),
    [client],
  );
  const subscribeToType = useCallback((type, handler) => client.on(type, handler), [client]);

  const value = useMemo(
    () => ({
      connectionState,
      isConnected: connectionState === ConnectionState.CONNECTED,
      sendMessage,
      joinRoom,
      leaveRoom,
      subscribe,
      subscribeToType,
      rooms,
      status,
      client,
      wsManager: client,
    }),
    [connectionState, sendMessage, joinRoom, leaveRoom, subscribe, subscribeToType, rooms, status, client],
  );
  return createElement(WebSocketContext.Provider, { value }, children);
}

/** The provider's value; throws outside a `WebSocketProvider`. */
export function useWebSocketContext() {
  const context = useContext(WebSocketContext);
  if (!context) throw new Error("useWebSocketContext must be used within WebSocketProvider");
  return context;
}

/** `{connectionState, isConnected, sendMessage, rooms}`; options `onMessage`, `onConnectionChange`, `onError`. */
export function useWebSocket(options = {}) {
  const { connectionState, isConnected, sendMessage, rooms, subscribeToType } = useWebSocketContext();
  const latest = useRef(options);
  latest.current = options;
  const { onMessage, onConnectionChange, onError } = options;

  useEffect(() => {
    if (!onMessage) return undefined;
    return subscribeToType("message", (msg) => latest.current.onMessage?.(msg));
  }, [Boolean(onMessage), subscribeToType]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    latest.current.onConnectionChange?.(connectionState);
  }, [connectionState, Boolean(onConnectionChange)]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    if (!onError) return undefined;
    return subscribeToType("error", (msg) => latest.current.onError?.(msg.data));
  }, [Boolean(onError), subscribeToType]); // eslint-disable-line react-hooks/exhaustive-deps

  return { connectionState, isConnected, sendMessage, rooms };
}

/**
 * One room: `{isJoined, joinRoom, leaveRoom, sendToRoom, messages}` (messages newest
 * first, at most ROOM_MESSAGES, starting with the room's recent history).
 * Options: `autoJoin` (true), `autoLeave` (true), `onMessage`, `onJoin`, `onLeave`, `onError`.
 */
export function useRoom(roomId, options = {}) {
  const { autoJoin = true, autoLeave = true } = options;
  const { joinRoom, leaveRoom, sendMessage, subscribe, rooms, isConnected, client } = useWebSocketContext();
  const latest = useRef(options);
  latest.current = options;
  const [messages, setMessages] = useState(() => (roomId ? client.recent(roomId).slice().reverse() : []));
  const isJoined = Boolean(roomId) && rooms.includes(roomId);
  const wasJoined = useRef(false);

  useEffect(() => {
    if (isJoined && !wasJoined.current) latest.current.onJoin?.();
    if (!isJoined && wasJoined.current) latest.current.onLeave?.();
    wasJoined.current = isJoined;
  }, [isJoined]);

  useEffect(() => {
    if (autoJoin && isConnected && !isJoined && roomId) {
      joinRoom(roomId).catch((error) => latest.current.onError?.(error));
    }
  }, [autoJoin, isConnected, isJoined, roomId, joinRoom]);

  // Leave on unmount (or room change) only: a dropped connection empties `rooms` too,
  // and leaving then would take the next connection out of the room.
  const joinedNow = useRef(isJoined);
  joinedNow.current = isJoined;
  useEffect(() => () => {
    if (autoLeave && joinedNow.current && roomId) leaveRoom(roomId).catch(() => {});
  }, [autoLeave, roomId, leaveRoom]);

  useEffect(() => {
    if (!roomId) return undefined;
    const add = (list) => (msg) => (list.some((m) => m.id === msg.id) ? list : [msg, ...list].slice(0, ROOM_MESSAGES));
    setMessages(client.recent(roomId).slice().reverse());
    // With the client's recent messages (history on join, then live, deduplicated)
    // the list is theirs; without them, live messages only.
    let stopRecent = null;
    try {
      stopRecent = client.onRecent(({ room, messages: recent }) => {
        if (room === roomId) setMessages(recent.slice(-ROOM_MESSAGES).reverse());
      });
    } catch {
      stopRecent = null;
    }
    const stop = subscribe(roomId, (msg) => {
      if (!stopRecent && SHOWN_TYPES.has(msg.type)) setMessages((prev) => add(prev)(msg));
      latest.current.onMessage?.(msg);
    });
    return () => {
      stop();
      stopRecent?.();
    };
  }, [roomId, subscribe, client]);

  const handleJoin = useCallback(async () => {
    if (!roomId) throw new Error("Room ID is required");
    try {
      await joinRoom(roomId);
    } catch (error) {
      latest.current.onError?.(error);
      throw error;
    }
  }, [roomId, joinRoom]);

  const handleLeave = useCallback(async () => {
    if (!roomId) throw new Error("Room ID is required");
    try {
      await leaveRoom(roomId);
    } catch (error) {
      latest.current.onError?.(error);
      throw error;
    }
  }, [roomId, leaveRoom]);

  const sendToRoom = useCallback(async (message) => {
    if (!roomId) throw new Error("Room ID is required");
    return sendMessage({ ...message, room: roomId });
  }, [roomId, sendMessage]);

  return { isJoined, joinRoom: handleJoin, leaveRoom: handleLeave, sendToRoom, messages };
}

/** The user's personal room `user:{userId}` (null without a user id). */
export function usePersonalRoom(userId, { onMessage, onNotification, onPresence } = {}) {
  const room = useRoom(userId ? `user:${userId}` : "", {
    autoJoin: Boolean(userId),
    autoLeave: false, // the server keeps every connection in its personal room
    onMessage: (msg) => {
      if (msg.type === "notification") onNotification?.(msg.data);
      else if (msg.type === "presence") onPresence?.(msg.data);
      else onMessage?.(msg);
    },
  });
  return userId ? room : null;
}

/**
 * `{updatePresence(status, metadata), subscribeToUser(userId) -> unsubscribe, presence, myStatus}`.
 * With `userId`, sets `online` when connected and `away` while the page is hidden.
 */
export function usePresence({ userId, onPresenceChange } = {}) {
  const { client, isConnected } = useWebSocketContext();
  const [presence, setPresence] = useState(() => new Map(client.presence.users));
  const [myStatus, setMyStatus] = useState(null);
  const latest = useRef(onPresenceChange);
  latest.current = onPresenceChange;

  useEffect(() => client.presence.onChange(({ userId: who, presence: p }) => {
    setPresence(new Map(client.presence.users));
    if (!p) return;
    if (userId && who === userId) setMyStatus(p.status);
    latest.current?.(p);
  }), [client, userId]);

  const updatePresence = useCallback(async (status, metadata) => {
    if (!userId) throw new Error("User ID is required to update presence");
    await client.presence.setStatus(status, metadata);
    setMyStatus(status);
  }, [client, userId]);

  const subscribeToUser = useCallback((target) => client.presence.subscribe(target), [client]);

  useEffect(() => {
    if (!userId || !isConnected || typeof document === "undefined") return undefined;
    const onVisibility = () => {
      updatePresence(document.hidden ? "away" : "online").catch(() => {});
    };
    document.addEventListener("visibilitychange", onVisibility);
    updatePresence(document.hidden ? "away" : "online").catch(() => {});
    return () => document.removeEventListener("visibilitychange", onVisibility);
  }, [userId, isConnected, updatePresence]);

  return { updatePresence, subscribeToUser, presence, myStatus };
}

/**
 * `{connectionState, isConnected, isConnecting, isReconnecting, isDisconnected, hasError,
 * connectionTime, lastError}` as the React client's hook, plus `reconnectAttempts`
 * and `reconnects`.
 */
export function useWebSocketStatus() {
  const { connectionState, isConnected, status } = useWebSocketContext();
  return {
    connectionState,
    isConnected,
    isConnecting: connectionState === ConnectionState.CONNECTING,
    isReconnecting: connectionState === ConnectionState.RECONNECTING,
    isDisconnected: connectionState === ConnectionState.DISCONNECTED,
    hasError: connectionState === ConnectionState.ERROR,
    connectionTime: status.connectionTime,
    lastError: status.lastError,
    reconnectAttempts: status.reconnectAttempts,
    reconnects: status.reconnects,
  };
}
