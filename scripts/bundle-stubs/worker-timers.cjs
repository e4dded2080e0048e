// Stand-in for the worker-timers package inside the agent's bundle (scripts/bundle.mjs).
// mqtt.js requires it at load but only uses it in a browser (timerVariant 'auto' picks Node's own
// timers under Node); the real package pulls in @babel/runtime, broker-factory and a worker
// script. If anything ever asks for it, it fails loudly instead of running without timers.
'use strict';
/* global module */
function unavailable() {
  throw new Error('worker-timers is not part of this build: use timerVariant "native" (Node timers)');
}
module.exports = { setInterval: unavailable, clearInterval: unavailable, setTimeout: unavailable, clearTimeout: unavailable };
