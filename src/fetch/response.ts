/**
 * What the download loop needs from an HTTP response, whichever client produced it: the
 * fixed-buffer client (raw-http.ts, http and https) or Node's http/https module (node-response.ts).
 */

/**
 * Takes one run of body bytes. The bytes are only valid during the call and, when a promise is
 * returned, until it settles: the fixed-buffer client reads the next bytes into the same memory, so
 * it stops reading until then (that is also how the sink applies backpressure and throttling).
 * Throwing (or rejecting) ends the body with that error.
 */
export type BodySink = (chunk: Buffer) => Promise<void> | undefined;

export interface BodyOptions {
  /** How long to wait for the server to send more; paused time (sink busy) does not count. */
  idleMs: number;
  /** The error the body ends with when the server stays silent for `idleMs`. */
  idleError: () => Error;
}

export interface DownloadResponse {
  readonly status: number;
  readonly statusMessage: string;
  /** Header value by lower-case name; repeated headers joined with ", ". */
  header(name: string): string | undefined;
  /** Delivers the body to `sink`; resolves when it ended as framed, rejects on any failure. */
  readBody(sink: BodySink, options: BodyOptions): Promise<void>;
  /** Closes the connection; a pending `readBody` rejects with `err` (if given). */
  destroy(err?: Error): void;
}

/**
 * Which HTTP client downloads: 'fixed-buffer' (the default: one read buffer per connection, RSS
 * constant in the artifact size) or 'node-http' (Node's http/https modules, kept for A/B benches).
 */
export type HttpClientChoice = 'fixed-buffer' | 'node-http';
