/**
 * Optional TanStack Query adapter for the roomcast browser client.
 *
 * As the Go gateway's React client does, each incoming message type invalidates
 * the queries it makes stale, so the page refetches over HTTP instead of
 * patching caches from socket data. Works with TanStack Query v4 and v5
 * (`queryClient.invalidateQueries({queryKey})`); this module imports nothing.
 *
 *   import { invalidateOnMessages } from "/websocket/tanstack.js";
 *   const stop = invalidateOnMessages(client, queryClient, {
 *     ...defaultInvalidations,
 *     custom_event: (msg) => [["orders", msg.data.order_id]],
 *   });
 */

const THREAD_PREFIX = "thread:";

/**
 * Message type -> query keys to invalidate: a list of keys, or a function of
 * the message returning one. Keys are prefixes, as in TanStack Query
 * (`["users"]` also covers `["users", "42"]`).
 *
 * These are the React client's own keys (its WebSocketProvider), the same
 * table as the Python SDK's `roomcast.client.Invalidator`. The React client
 * patches thread and contact caches in place; a generic adapter invalidates
 * them instead.
 */
export const defaultInvalidations = Object.freeze({
  user_profile_update: (msg) => (msg.data?.user_id ? [["users"], ["auth", "current-user"]] : []),
  group_membership_change: (msg) => (msg.data?.user_id ? [["groups"], ["users"]] : []),
  room_update: (msg) => {
    const room = msg.room ?? msg.data?.room_id;
    return room ? [["chat", "threads", room]] : [];
  },
  message: (msg) =>
    msg.room?.startsWith(THREAD_PREFIX)
      ? [["chat", "messages", msg.room.slice(THREAD_PREFIX.length)], ["chat", "threads"]]
      : [],
  notification: (msg) => ({ new_message: [["chat", "threads"]], task_update: [["scheduler"]] })[msg.data?.type] ?? [],
  presence: (msg) => (msg.data?.userId ? [["chat", "contacts"]] : []),
});

/**
 * Every key a message in `room` could make stale under `defaultInvalidations`:
 * any type can be sent to any room, so the whole table, plus the room's own
 * thread messages for a `thread:` room.
 */
export function defaultRoomKeys(room) {
  const keys = [["users"], ["auth", "current-user"], ["groups"], ["chat", "threads"], ["chat", "contacts"], ["scheduler"]];
  if (room.startsWith(THREAD_PREFIX)) keys.unshift(["chat", "messages", room.slice(THREAD_PREFIX.length)]);
  return keys;
}

/**
 * Invalidate queries as messages arrive; returns a function that stops it.
 *
 * A room that did not recover after a reconnect (the client's `onRecovery`
 * says `recovered: false`) missed messages for good: `roomKeys(room)` is
 * invalidated; by default every key of the default table (`defaultRoomKeys`)
 * or, with a map of your own, every query (`roomKeys` returning null does
 * that too). Rooms that recovered had their missed messages replayed, and
 * those invalidated what they had to.
 *
 * `invalidateOnReconnect`: `true` (default) invalidates every query after a
 * reconnect that had no positions to recover from (a server without history:
 * what was published meanwhile is gone, see docs/protocol.md); `"all"` does so
 * after every reconnect (messages to everyone or to one connection are never
 * replayed); `false` never.
 */
export function invalidateOnMessages(
  client,
  queryClient,
  map = defaultInvalidations,
  { invalidateOnReconnect = true, roomKeys = map === defaultInvalidations ? defaultRoomKeys : () => null } = {},
) {
  const stopMessages = client.on("*", (msg) => {
    const rule = map[msg.type];
    if (!rule) return;
    const keys = typeof rule === "function" ? rule(msg) : rule;
    for (const key of keys ?? []) {
      queryClient.invalidateQueries({ queryKey: key });
    }
  });
  const stopState = client.onState(({ state, previous, recovering }) => {
    if (state !== "connected" || previous !== "reconnecting" || !invalidateOnReconnect) return;
    if (invalidateOnReconnect === "all" || !recovering) queryClient.invalidateQueries();
  });
  const stopRecovery = client.onRecovery?.(({ room, recovered }) => {
    if (recovered) return;
    const keys = roomKeys(room);
    if (keys == null) {
      queryClient.invalidateQueries();
      return;
    }
    for (const key of keys) queryClient.invalidateQueries({ queryKey: key });
  });
  return () => {
    stopMessages();
    stopState();
    stopRecovery?.();
  };
}
