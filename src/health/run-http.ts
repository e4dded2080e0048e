// One attempt of an `http` check, on node:http/https so the agent needs no HTTP client dependency
// and every connection is closed afterwards (no keep-alive sockets lingering after boot checks).
import * as http from 'node:http';
import * as https from 'node:https';
import { startDeadline } from './deadline.js';
import { describeError } from './describe-error.js';
import { failed, type AttemptOutcome } from './outcome.js';
import { tailText } from './output-tail.js';
import type { HttpCheckSpec } from './schema.js';

/** Bodies are read only this far: enough for a status page, bounded for endpoints that stream. */
export const MAX_BODY_BYTES = 64 * 1024;

export function runHttpAttempt(spec: HttpCheckSpec, signal?: AbortSignal): Promise<AttemptOutcome> {
  return new Promise<AttemptOutcome>((resolve) => {
    const deadline = startDeadline(spec.timeoutMs, signal);
    let settled = false;
    const settle = (outcome: AttemptOutcome): void => {
      if (settled) return;
      settled = true;
      deadline.dispose();
      resolve(outcome);
    };
    const onError = (err: unknown): void => {
      settle(failed(deadline.signal.aborted ? deadline.reason() : describeError(err)));
    };

    if (deadline.signal.aborted) {
      settle(failed(deadline.reason()));
      return;
    }

    const url = new URL(spec.url);
    const request = url.protocol === 'https:' ? https.request : http.request;
    let req: http.ClientRequest;
    try {
      req = request(url, {
        method: spec.method,
        // Aborting destroys the socket, which covers connect, headers and body in one deadline.
        signal: deadline.signal,
        agent: false,
        headers: { connection: 'close', 'user-agent': 'ota-agent-health' },
      });
    } catch (err) {
      settle(failed(describeError(err)));
      return;
    }

    req.on('error', onError);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = (): void => {
        const body = Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES);
        settle(judge(spec, res.statusCode ?? 0, body));
        // Past the byte cap or after judging, the rest of the response is of no interest.
        req.destroy();
      };
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= MAX_BODY_BYTES) finish();
      });
      res.on('end', finish);
      res.on('error', onError);
      res.on('close', () => {
        if (!res.complete) onError(new Error('connection closed before the response body was complete'));
      });
    });
    req.end();
  });
}

function judge(spec: HttpCheckSpec, status: number, body: Buffer): AttemptOutcome {
  const outputTail = tailText(body);
  if (status !== spec.expectStatus) return failed(`HTTP ${status}, expected ${spec.expectStatus}`, outputTail);
  if (spec.bodyMatch === undefined) return { passed: true, outputTail };
  if (spec.method === 'HEAD') return failed('bodyMatch cannot be checked with method HEAD', outputTail);
  if (!body.toString('utf8').includes(spec.bodyMatch)) {
    return failed(`body does not contain ${JSON.stringify(spec.bodyMatch)}`, outputTail);
  }
  return { passed: true, outputTail };
}
