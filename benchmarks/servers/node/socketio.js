'use strict';
// The peer Node.js users would pick: Socket.IO, a client emits `publish`, the server
// emits `msg` to room `bench` without the sender (socket.to(room).emit), one emit per
// message. Like benchmarks/servers/sio.py; the connection handler enters the room in
// the tick the namespace connect (`40{...}`) is sent, before any publish can arrive.
// Socket.IO's adapter encodes a broadcast once and pre-builds its WebSocket frame.
//
//     node benchmarks/servers/node/socketio.js --port 8766

const http = require('node:http');
const { Server } = require('socket.io');
const { parseArgs, exitOnSignals } = require('./args');

const ROOM = 'bench';
const args = parseArgs(process.argv.slice(2), {});
const server = http.createServer();
const io = new Server(server, { cors: { origin: '*' }, serveClient: false });

io.on('connection', (socket) => {
  socket.join(ROOM);
  socket.on('publish', (data) => socket.to(ROOM).emit('msg', data));
});

exitOnSignals();
server.listen({ host: args.host, port: args.port, backlog: args.backlog });
