// Node's http/https client behind DownloadResponse (httpClient: 'node-http'; A/B benches, tests).
// Each socket chunk is a fresh Buffer here; the sink copies it, so it is garbage right after, but
// it waits for a scavenge: that is the RSS growth the fixed-buffer client avoids.
import type { IncomingMessage } from 'node:http';
import type { BodyOptions, BodySink, DownloadResponse } from './response.js';

export function fromIncomingMessage(res: IncomingMessage): DownloadResponse {
  return {
    status: res.statusCode ?? 0,
    statusMessage: res.statusMessage ?? '',
    header(name) {
      const value = res.headers[name];
      return Array.isArray(value) ? value.join(', ') : value;
    },
    readBody: (sink, options) => readBody(res, sink, options),
    destroy: (err) => res.destroy(err),
  };
}

async function readBody(res: IncomingMessage, sink: BodySink, options: BodyOptions): Promise<void> {
  // The idle timer runs only while we wait for the server, not while the sink writes or throttles:
  // a socket timeout would also fire on a slow disk or a low bandwidth limit.
  let timer: NodeJS.Timeout | undefined;
  const disarm = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  const arm = (): void => {
    disarm();
    timer = setTimeout(() => res.destroy(options.idleError()), options.idleMs);
  };
  try {
    arm();
    for await (const chunk of res as AsyncIterable<Buffer>) {
      disarm();
      const busy = sink(chunk);
      if (busy !== undefined) await busy;
      arm();
    }
  } finally {
    disarm();
  }
}
