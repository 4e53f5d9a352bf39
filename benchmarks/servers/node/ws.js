'use strict';
// The bare limit on Node.js: the `ws` library fanning out a pre-built frame.
//
// Like benchmarks/servers/bare.py: every connection is in one implicit room; a text
// message from any connection is framed once (ws's Sender.frame, unmasked) and the same
// buffers are handed to every other connection's sender (sendFrame: cork, write, uncork),
// the way socket.io's adapter broadcasts. No auth, no envelope. `--mode send` calls
// ws.send() per connection instead. On connect the server sends {"type":"room_joined"}.
//
//     node benchmarks/servers/node/ws.js --port 8765 [--mode frame|send]

const http = require('node:http');
const { WebSocketServer, WebSocket } = require('ws');
const { parseArgs, exitOnSignals } = require('./args');

const JOINED = '{"type":"room_joined","room":"bench"}';
const args = parseArgs(process.argv.slice(2), { mode: 'frame' });
const server = http.createServer((req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false, maxPayload: 1 << 20 });
const clients = new Set();

function fanOut(sender, data) {
  if (args.mode === 'send') {
    for (const ws of clients) {
      if (ws !== sender && ws.readyState === WebSocket.OPEN) ws.send(data, { binary: false });
    }
    return;
  }
  const frame = WebSocket.Sender.frame(data, {
    readOnly: false, mask: false, rsv1: false, opcode: 1, fin: true,
  });
  for (const ws of clients) {
    if (ws !== sender && ws.readyState === WebSocket.OPEN) ws._sender.sendFrame(frame);
  }
}

wss.on('connection', (ws) => {
  clients.add(ws);
  ws.on('message', (data, isBinary) => {
    if (!isBinary) fanOut(ws, data);
  });
  ws.on('close', () => clients.delete(ws));
  ws.on('error', () => clients.delete(ws));
  ws.send(JOINED);
});

exitOnSignals();
server.listen({ host: args.host, port: args.port, backlog: args.backlog });
