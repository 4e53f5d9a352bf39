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
 * Invalidate queries as messages arrive; returns a function that stops it.
 *
 * With `invalidateOnReconnect` (default true) every query is invalidated when
 * the client reconnects: messages sent while it was away are not replayed
 * (docs/protocol.md: plain pub/sub is at-most-once), so anything may be stale.
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
      queryClient.invalidateQueries({ queryKey: key });
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
