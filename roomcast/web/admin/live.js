// The admin dashboard's live socket: figures pushed every second, and one room's tail.
// Reconnects after a loss (1 s × 1.5 per attempt, capped at 30 s, as the client does).

const PATH = "/websocket/admin/live";

/**
 * handlers: {onSnapshot(msg), onTick(msg), onTail(msg), onState(state, detail)} where
 * state is "connecting", "live", "reconnecting" or "denied".
 * Returns {tail(room), untail(), close()}.
 */
export function connectLive(handlers) {
  let ws = null;
  let attempt = 0;
  let closed = false;
  let room = null;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${PATH}`;

  function open() {
    handlers.onState?.(attempt === 0 ? "connecting" : "reconnecting");
    ws = new WebSocket(url);
    let opened = false;
    ws.onopen = () => {
      opened = true;
      attempt = 0;
      handlers.onState?.("live");
      if (room) ws.send(JSON.stringify({ action: "tail", room }));
    };
    ws.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (msg.type === "snapshot") handlers.onSnapshot?.(msg);
      else if (msg.type === "tick") handlers.onTick?.(msg);
      else handlers.onTail?.(msg);
    };
    ws.onclose = () => {
      if (closed) return;
      // A refused upgrade (not an administrator any more) looks like any other failure
      // to a browser; the page checks /api/me again before giving up.
      const delay = Math.min(1000 * 1.5 ** attempt, 30000);
      attempt += 1;
      handlers.onState?.("reconnecting", { delay, opened });
      setTimeout(() => {
        if (!closed) open();
      }, delay);
    };
  }

  open();
  return {
    tail(name) {
      room = name || null;
      if (ws?.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify(room ? { action: "tail", room } : { action: "untail" }));
      }
    },
    untail() {
      this.tail(null);
    },
    close() {
      closed = true;
      ws?.close();
    },
  };
}
