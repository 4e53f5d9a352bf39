/**
 * Optional TanStack Query adapter for the roomcast browser client.
 *
 * As compat.md's React client does, each incoming message type invalidates
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

/**
 * Message type -> query keys to invalidate: a list of keys, or a function of
 * the message returning one. A trailing `undefined` part is dropped, so a
 * message lacking the id invalidates the whole family (`["user"]`).
 */
export const defaultInvalidations = Object.freeze({
  user_profile_update: (msg) => [["user", msg.data?.user_id], ["profile", msg.data?.user_id]],
  group_membership_change: (msg) => [["groups"], ["user", msg.data?.user_id]],
  room_joined: [["rooms"]],
  room_left: [["rooms"]],
  room_update: (msg) => [["rooms"], ["room", msg.data?.room_id ?? msg.room]],
  presence: [["presence"]],
  notification: [["notifications"]],
  message: (msg) => [["messages", msg.room]],
  backend_status: [["status"]],
  service_recovery: [["status"]],
});

function cleanKey(key) {
  const parts = [...key];
  while (parts.length > 0 && parts[parts.length - 1] === undefined) parts.pop();
  return parts;
}

/**
 * Invalidate queries as messages arrive; returns a function that stops it.
 *
 * With `invalidateOnReconnect` (default true) every query is invalidated when
 * the client reconnects: messages sent while it was away are not replayed
 * (compat.md: plain pub/sub is at-most-once), so anything may be stale.
 */
export function invalidateOnMessages(
  client,
  queryClient,
  map = defaultInvalidations,
  { invalidateOnReconnect = true } = {},
) {
  const stopMessages = client.on("*", (msg) => {
    const rule = map[msg.type];
    if (!rule) return;
    const keys = typeof rule === "function" ? rule(msg) : rule;
    for (const key of keys ?? []) {
      queryClient.invalidateQueries({ queryKey: cleanKey(key) });
    }
  });
  const stopState = client.onState(({ state, previous }) => {
    if (invalidateOnReconnect && state === "connected" && previous === "reconnecting") {
      queryClient.invalidateQueries();
    }
  });
  return () => {
    stopMessages();
    stopState();
  };
}
