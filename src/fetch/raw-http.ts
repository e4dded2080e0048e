// Fixed-buffer HTTP/1.1 GET over TCP (http:) or TLS (https:). Node's http client hands out a fresh
// Buffer for every socket read; at loopback speed they pile up as external memory until a
// scavenge, which was +42 MiB of RSS for a 1 GiB download. Here the socket reads into a buffer of
// the connection (the `onread` option of net.connect and tls.connect; with TLS the decrypted bytes
// land there), the body goes to the sink straight from it, and the socket stops reading while the
// sink is busy. Bytes not consumed yet are never overwritten (see nextReadBuffer).
import net from 'node:net';
import tls from 'node:tls';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { DownloadError, describeUrl } from './errors.js';
import {
  ChunkedDecoder,
  HttpParseError,
  MAX_HEAD_BYTES,
  bodyFraming,
  findHeadEnd,
  parseHead,
  type BodyFraming,
  type ResponseHead,
} from './http-framing.js';
import { nodeTlsOptions, type TlsOptions } from './tls-options.js';
import type { BodyOptions, BodySink, DownloadResponse } from './response.js';

// One socket read at most. Larger than Node's 64 KiB stream reads: on a fast link each read takes
// what the kernel holds, so fewer reads and callbacks (1 GiB over loopback: about 0.2 s less
// system CPU than with 64 KiB, within the noise of a loaded machine).
const READ_BUFFER_BYTES = 256 * 1024;
// A read into the free tail of a buffer that still holds unconsumed bytes needs at least this much
// room (a TLS record is up to 16 KiB); less, and the next read goes to another buffer.
const MIN_READ_BYTES = 32 * 1024;

export interface RawGetOptions {
  signal: AbortSignal | undefined;
  /** How long to wait for the response head. */
  timeoutMs: number;
  tls: TlsOptions | undefined;
}

/** Sends one GET (Connection: close) and resolves once the response head has arrived. */
export function rawGet(url: URL, headers: Record<string, string>, options: RawGetOptions): Promise<DownloadResponse> {
  return new Promise((resolve, reject) => {
    const request = encodeRequest(url, headers);
    new RawResponse(url, request, options, resolve, reject);
  });
}

function encodeRequest(url: URL, headers: Record<string, string>): Buffer {
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`];
  const names = new Set<string>();
  const add = (name: string, value: string): void => {
    // The same checks (and TypeErrors) as http.request: no CR/LF smuggled into the request.
    validateHeaderName(name);
    validateHeaderValue(name, value);
    names.add(name.toLowerCase());
    lines.push(`${name}: ${value}`);
  };
  for (const [name, value] of Object.entries(headers)) add(name, value);
  if (!names.has('host')) add('Host', url.host);
  if (!names.has('authorization') && (url.username !== '' || url.password !== '')) {
    // http.request does this for user:password@ in the URL; keep it for the same URLs.
    const auth = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    add('Authorization', `Basic ${Buffer.from(auth).toString('base64')}`);
  }
  // One response per connection: the end of the body never depends on the server closing early.
  if (!names.has('connection')) add('Connection', 'close');
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}


function connectHost(url: URL): string {
  // WHATWG keeps the brackets of an IPv6 literal in `hostname`; the resolver wants them off.
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

/** A peer that closed in the middle of a body: Node's wording, which download.ts translates. */
function cutShort(): Error {
  return Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
}

function hangUp(): Error {
  return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}

function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  });
}

type Phase = 'head' | 'headers-seen' | 'body' | 'done' | 'failed';

interface Segment {
  buf: Buffer;
  from: number;
  to: number;
}

class RawResponse implements DownloadResponse {
  status = 0;
  statusMessage = '';
  private head: ResponseHead | undefined;
  private phase: Phase = 'head';
  private readonly socket: net.Socket;
  /** The buffer socket reads land in, and where the bytes of the last read into it end. */
  private readBuffer: Buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  private readEnd = 0;
  /** Read buffers no segment refers to any more, for reuse. */
  private readonly spare: Buffer[] = [];
  /**
   * Body bytes read but not yet given to the sink, oldest first. A segment stays here (holding its
   * buffer) until the sink is done with its last bytes.
   */
  private readonly pending: Segment[] = [];
  private headBytes: Buffer | undefined;
  private framing: BodyFraming = { kind: 'none' };
  private remaining = 0;
  private chunked: ChunkedDecoder | undefined;
  private eof = false;
  private sinkBusy = false;
  private failure: Error | undefined;
  private sink: BodySink | undefined;
  private bodyOptions: BodyOptions | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private headTimer: NodeJS.Timeout | undefined;
  private settleBody: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private readonly stopAbortWatch: () => void;

  constructor(
    private readonly url: URL,
    request: Buffer,
    options: RawGetOptions,
    private readonly resolveHead: (res: DownloadResponse) => void,
    private readonly rejectHead: (err: unknown) => void,
  ) {
    const signal = options.signal;
    if (signal?.aborted) throw abortError(signal);
    const onAbort = (): void => this.fail(abortError(signal as AbortSignal));
    signal?.addEventListener('abort', onAbort, { once: true });
    this.stopAbortWatch = () => signal?.removeEventListener('abort', onAbort);
    // The function form: Node asks for the buffer of the next read after every callback, so a
    // buffer still holding unconsumed bytes is never read into. With plain TCP that cannot happen
    // anyway (reading stops when the callback returns false), but TLS hands over everything it
    // decrypted from one TCP read, in several callbacks, even after reading was stopped.
    const onread = { buffer: () => this.nextReadBuffer(), callback: (nread: number, buf: Uint8Array) => this.onRead(nread, buf as Buffer) };
    const host = connectHost(url);
    if (url.protocol === 'https:') {
      // tls.connect takes `onread` like net.connect (Node >= 14), but @types/node does not declare it.
      const connect: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
        host,
        port: url.port === '' ? 443 : Number(url.port),
        // SNI and the certificate's name check, as https.request does (no SNI for an IP address).
        ...(net.isIP(host) === 0 ? { servername: host } : {}),
        ...nodeTlsOptions(options.tls),
        onread,
      };
      this.socket = tls.connect(connect);
    } else {
      this.socket = net.connect({ host, port: url.port === '' ? 80 : Number(url.port), onread });
    }
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('end', () => this.onEnd());
    this.socket.on('close', () => this.onEnd());
    this.headTimer = setTimeout(() => {
      this.fail(new DownloadError('DOWNLOAD_NETWORK', `no response from ${describeUrl(url)} within ${options.timeoutMs / 1000}s`));
    }, options.timeoutMs);
    // write, not end: some servers and proxies take a half-closed client for one that left.
    this.socket.write(request);
  }

  header(name: string): string | undefined {
    return this.head?.headers.get(name);
  }

  readBody(sink: BodySink, options: BodyOptions): Promise<void> {
    if (this.phase !== 'headers-seen') return Promise.reject(new Error(`response body already ${this.phase}`));
    this.phase = 'body';
    this.sink = sink;
    this.bodyOptions = options;
    const done = new Promise<void>((resolve, reject) => (this.settleBody = { resolve, reject }));
    // A caller that gave up on the body (and destroys the response) must not leave an unhandled rejection.
    done.catch(() => undefined);
    this.continueBody();
    return done;
  }

  destroy(err?: Error): void {
    if (err !== undefined) {
      this.fail(err);
      return;
    }
    if (this.phase === 'done' || this.phase === 'failed') return;
    this.fail(new Error('response destroyed before its body was read'));
  }

  /**
   * Where the next read goes: the whole read buffer when nothing in it waits for the sink, else the
   * free space after the bytes that wait (TLS: the rest of a burst), else another buffer.
   */
  private nextReadBuffer(): Buffer {
    if (!this.isHeld(this.readBuffer.buffer)) {
      this.readEnd = 0;
      return this.readBuffer;
    }
    if (this.readBuffer.length - this.readEnd >= MIN_READ_BYTES) return this.readBuffer.subarray(this.readEnd);
    this.readBuffer = this.spare.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
    this.readEnd = 0;
    return this.readBuffer;
  }

  private isHeld(memory: ArrayBufferLike): boolean {
    return this.pending.some((segment) => segment.buf.buffer === memory);
  }

  /** The onread callback: returning false stops reading until resume(). */
  private onRead(nread: number, buf: Buffer): boolean {
    if (buf.buffer === this.readBuffer.buffer) this.readEnd = buf.byteOffset - this.readBuffer.byteOffset + nread;
    if (this.phase === 'head') return this.onHeadBytes(nread, buf);
    if (this.phase === 'done' || this.phase === 'failed') return false;
    this.pending.push({ buf, from: 0, to: nread });
    // Waiting for the caller or the sink: kept for later (only TLS delivers while paused).
    if (this.phase !== 'body' || this.sinkBusy) return false;
    this.idleTimer?.refresh();
    return this.deliver();
  }

  private onHeadBytes(nread: number, buf: Buffer): boolean {
    const fresh = buf.subarray(0, nread);
    const earlier = this.headBytes;
    this.headBytes = undefined;
    const bytes = earlier === undefined ? Buffer.from(fresh) : Buffer.concat([earlier, fresh]);
    try {
      return this.parseHeadBytes(bytes, earlier?.length ?? 0, nread, buf);
    } catch (err) {
      this.fail(err as Error);
      return false;
    }
  }

  /** `bytes` ends with the `nread` bytes of the current read; the first `searched` had no head end. */
  private parseHeadBytes(bytes: Buffer, searched: number, nread: number, buf: Buffer): boolean {
    const end = findHeadEnd(bytes, searched - 3);
    if (end > MAX_HEAD_BYTES || (end < 0 && bytes.length > MAX_HEAD_BYTES)) {
      throw new HttpParseError('response head larger than 16 KiB');
    }
    if (end < 0) {
      this.headBytes = bytes;
      return true;
    }
    const head = parseHead(bytes.subarray(0, end));
    // Interim 1xx responses (100 Continue, 103 Early Hints) precede the real one.
    if (head.status >= 100 && head.status < 200 && head.status !== 101) {
      // What follows lies within this read (earlier reads held no head end), so `nread` still holds.
      const rest = bytes.subarray(end);
      return rest.length === 0 ? true : this.parseHeadBytes(rest, 0, nread, buf);
    }
    this.framing = bodyFraming(head);
    this.head = head;
    this.status = head.status;
    this.statusMessage = head.statusMessage;
    this.remaining = this.framing.kind === 'length' ? this.framing.length : 0;
    this.chunked = this.framing.kind === 'chunked' ? new ChunkedDecoder() : undefined;
    // Body bytes of this read stay in the buffer; reading stops until the caller wants the body.
    this.pending.push({ buf, from: nread - (bytes.length - end), to: nread });
    this.phase = 'headers-seen';
    clearTimeout(this.headTimer);
    this.resolveHead(this);
    return false;
  }

  private get bodyComplete(): boolean {
    if (this.framing.kind === 'none') return true;
    if (this.framing.kind === 'length') return this.remaining === 0;
    if (this.framing.kind === 'chunked') return this.chunked?.done ?? false;
    return false;
  }

  /** Gives pending body bytes to the sink until they are used up or the sink is busy. */
  private deliver(): boolean {
    const sink = this.sink as BodySink;
    while (this.phase === 'body') {
      if (this.bodyComplete) {
        this.finish();
        return false;
      }
      const segment = this.pending[0];
      if (segment === undefined) return true;
      if (segment.from >= segment.to) {
        this.pending.shift();
        this.release(segment.buf);
        continue;
      }
      let busy: Promise<void> | undefined;
      try {
        const run = this.nextRun(segment);
        segment.from = run.next;
        if (run.stop === run.start) continue;
        busy = sink(segment.buf.subarray(run.start, run.stop));
      } catch (err) {
        this.fail(err as Error);
        return false;
      }
      if (busy !== undefined) {
        this.waitForSink(busy);
        return false;
      }
    }
    return false;
  }

  private release(view: Buffer): void {
    // Each read buffer has an ArrayBuffer of its own (allocUnsafeSlow); a segment may be a view of
    // part of it. Two spares are plenty: more buffers are needed only while a TLS burst arrives.
    const memory = view.buffer;
    if (memory === this.readBuffer.buffer || this.isHeld(memory) || this.spare.length >= 2) return;
    this.spare.push(Buffer.from(memory));
  }

  private nextRun(segment: Segment): { start: number; stop: number; next: number } {
    const { from, to } = segment;
    if (this.framing.kind === 'chunked') return (this.chunked as ChunkedDecoder).next(segment.buf, from, to);
    const stop = this.framing.kind === 'length' ? Math.min(to, from + this.remaining) : to;
    if (this.framing.kind === 'length') this.remaining -= stop - from;
    return { start: from, stop, next: this.framing.kind === 'length' ? to : stop };
  }

  private waitForSink(busy: Promise<void>): void {
    this.sinkBusy = true;
    this.disarmIdle();
    busy.then(
      () => {
        this.sinkBusy = false;
        if (this.phase === 'failed') this.settleBody?.reject(this.failure as Error);
        else this.continueBody();
      },
      (err: unknown) => {
        this.sinkBusy = false;
        if (this.phase === 'failed') this.settleBody?.reject(this.failure as Error);
        else this.fail(err as Error);
      },
    );
  }

  /** After the sink caught up (or at the start): the rest of the buffer, then the socket again. */
  private continueBody(): void {
    if (this.phase !== 'body') return;
    if (!this.deliver()) return;
    if (this.eof) {
      this.onEnd();
      return;
    }
    this.armIdle();
    this.socket.resume();
  }

  private onEnd(): void {
    this.eof = true;
    if (this.phase === 'head') {
      this.fail(hangUp());
      return;
    }
    // Still to deliver, or not asked for yet: decided when the sink has had those bytes.
    if (this.phase !== 'body' || this.sinkBusy || this.pending.length > 0) return;
    if (this.framing.kind === 'until-close' || this.bodyComplete) this.finish();
    else this.fail(cutShort());
  }

  private armIdle(): void {
    const options = this.bodyOptions as BodyOptions;
    this.disarmIdle();
    this.idleTimer = setTimeout(() => this.fail(options.idleError()), options.idleMs);
  }

  private disarmIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private finish(): void {
    if (this.phase !== 'body') return;
    this.phase = 'done';
    this.cleanUp();
    this.socket.destroy();
    this.settleBody?.resolve();
  }

  private fail(err: Error): void {
    if (this.phase === 'done' || this.phase === 'failed') return;
    const phase = this.phase;
    this.phase = 'failed';
    this.failure = err;
    this.cleanUp();
    this.socket.destroy();
    if (phase === 'head') this.rejectHead(err);
    // While the sink still works on bytes we gave it, the body is not over for the caller yet: it
    // would otherwise start cleaning up (flush, retry) under a write that is still going on.
    else if (!this.sinkBusy) this.settleBody?.reject(err);
  }

  private cleanUp(): void {
    clearTimeout(this.headTimer);
    this.disarmIdle();
    this.stopAbortWatch();
  }
}
