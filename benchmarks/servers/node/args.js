'use strict';
// The command line of both servers: --port N [--host H] [--backlog N] [--mode M].

function parseArgs(argv, defaults) {
  const out = { host: '127.0.0.1', backlog: 2048, ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in out) && key !== 'port') throw new Error(`unknown option ${argv[i]}`);
    out[key] = typeof out[key] === 'number' || key === 'port' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!out.port) throw new Error('--port is required');
  return out;
}

// SIGTERM (the runner's stop) and SIGINT end the process at once: nothing to flush.
function exitOnSignals() {
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
}

module.exports = { parseArgs, exitOnSignals };
