// One attempt of a `tcp` check: proves something is listening, nothing more.
import * as net from 'node:net';
import { startDeadline } from './deadline.js';
import { describeError } from './describe-error.js';
import { failed, type AttemptOutcome } from './outcome.js';
import type { TcpCheckSpec } from './schema.js';

export function runTcpAttempt(spec: TcpCheckSpec, signal?: AbortSignal): Promise<AttemptOutcome> {
  return new Promise<AttemptOutcome>((resolve) => {
    const deadline = startDeadline(spec.timeoutMs, signal);
    if (deadline.signal.aborted) {
      deadline.dispose();
      resolve(failed(deadline.reason()));
      return;
    }

    const socket = net.connect({ host: spec.host, port: spec.port });
    let settled = false;
    const settle = (outcome: AttemptOutcome): void => {
      if (settled) return;
      settled = true;
      deadline.dispose();
      deadline.signal.removeEventListener('abort', onDeadline);
      socket.destroy();
      resolve(outcome);
    };
    const onDeadline = (): void => settle(failed(deadline.reason()));

    deadline.signal.addEventListener('abort', onDeadline, { once: true });
    socket.once('connect', () => settle({ passed: true, outputTail: `connected to ${spec.host}:${spec.port}` }));
    socket.on('error', (err) => settle(failed(describeError(err))));
  });
}
