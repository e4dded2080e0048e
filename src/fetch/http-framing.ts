// HTTP/1.1 response parsing for the fixed-buffer client (raw-http.ts): the head (status line and
// headers) and how the body is delimited (RFC 9112 section 6.3). Only what a GET download needs: no
// keep-alive (we send Connection: close), no upgrades, no trailers kept.

/** Node's default --max-http-header-size: a larger head is refused the same way. */
export const MAX_HEAD_BYTES = 16 * 1024;
const MAX_CHUNK_LINE = 4096;

export class HttpParseError extends Error {
  constructor(message: string) {
    super(`Parse Error: ${message}`);
    this.name = 'HttpParseError';
  }
}

export interface ResponseHead {
  status: number;
  statusMessage: string;
  /** Lower-case names; repeated headers joined with ", " (as Node's IncomingMessage.headers). */
  headers: Map<string, string>;
}

/** Where the head ends (the index after its blank line) in `bytes`, or -1. Accepts bare LF lines. */
export function findHeadEnd(bytes: Buffer, from: number): number {
  for (let i = Math.max(0, from); i < bytes.length; i++) {
    if (bytes[i] !== 0x0a) continue;
    if (bytes[i + 1] === 0x0a) return i + 2;
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Parses a complete head (up to and including its blank line). */
export function parseHead(head: Buffer): ResponseHead {
  const lines = head.toString('latin1').split(/\r?\n/);
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (status === null) throw new HttpParseError(`invalid status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    // Obsolete line folding and names with spaces are refused, as llhttp does: both have been
    // used to smuggle a second meaning past one of two parsers.
    if (!TOKEN.test(name)) throw new HttpParseError(`invalid header line ${JSON.stringify(line.slice(0, 80))}`);
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    const earlier = headers.get(key);
    headers.set(key, earlier === undefined ? value : `${earlier}, ${value}`);
  }
  return { status: Number(status[1]), statusMessage: status[2] ?? '', headers };
}

export type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  | { kind: 'until-close' };

/** How the body of a response to GET is delimited. */
export function bodyFraming(head: ResponseHead): BodyFraming {
  if (head.status < 200 || head.status === 204 || head.status === 304) return { kind: 'none' };
  const te = head.headers.get('transfer-encoding');
  if (te !== undefined) {
    // Transfer-Encoding wins over Content-Length; a final coding other than chunked runs to close.
    const last = te.split(',').at(-1)?.trim().toLowerCase();
    return last === 'chunked' ? { kind: 'chunked' } : { kind: 'until-close' };
  }
  const cl = head.headers.get('content-length');
  if (cl === undefined) return { kind: 'until-close' };
  const values = new Set(cl.split(',').map((v) => v.trim()));
  const [only] = values;
  if (values.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only)) {
    throw new HttpParseError(`invalid Content-Length ${JSON.stringify(cl.slice(0, 80))}`);
  }
  return { kind: 'length', length: Number(only) };
}

/** The next run of body bytes found in a buffer: [start, stop), and where to continue. */
export interface BodyRun {
  start: number;
  stop: number;
  next: number;
}

/**
 * Streaming decoder of `Transfer-Encoding: chunked`. The data is never copied: it returns where the
 * body bytes are inside the buffer it is given, and consumes the framing between them.
 */
export class ChunkedDecoder {
  private state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  private line = '';
  private remaining = 0;
  private sawCr = false;

  get done(): boolean {
    return this.state === 'done';
  }

  /** The next body run in buf[pos, end) (empty when there is none before `end` or the body is done). */
  next(buf: Buffer, pos: number, end: number): BodyRun {
    while (pos < end) {
      if (this.state === 'data') {
        const stop = Math.min(end, pos + this.remaining);
        this.remaining -= stop - pos;
        if (this.remaining === 0) this.state = 'data-end';
        return { start: pos, stop, next: stop };
      }
      if (this.state === 'done') return { start: end, stop: end, next: end };
      this.framingByte(buf[pos] as number);
      pos += 1;
    }
    return { start: end, stop: end, next: end };
  }

  private framingByte(byte: number): void {
    if (this.state === 'data-end') {
      if (byte === 0x0d && !this.sawCr) {
        this.sawCr = true;
        return;
      }
      if (byte !== 0x0a) throw new HttpParseError('chunk data not followed by CRLF');
      this.sawCr = false;
      this.state = 'size';
      return;
    }
    if (byte !== 0x0a) {
      if (this.line.length >= MAX_CHUNK_LINE) throw new HttpParseError('chunk size or trailer line too long');
      this.line += String.fromCharCode(byte);
      return;
    }
    const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
    this.line = '';
    if (this.state === 'trailer') {
      if (line === '') this.state = 'done';
      return;
    }
    const size = (line.split(';')[0] ?? '').trim();
    if (!/^[0-9a-fA-F]{1,12}$/.test(size)) throw new HttpParseError(`invalid chunk size ${JSON.stringify(line.slice(0, 40))}`);
    this.remaining = Number.parseInt(size, 16);
    this.state = this.remaining === 0 ? 'trailer' : 'data';
  }
}
