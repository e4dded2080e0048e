import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { DownloadError, describeUrl } from './errors.js';
import { fromIncomingMessage } from './node-response.js';
import { rawGet } from './raw-http.js';
import type { DownloadResponse, HttpClientChoice } from './response.js';
import { nodeTlsOptions, type TlsOptions } from './tls-options.js';

export type { TlsOptions } from './tls-options.js';

export interface GetOptions {
  headers: Record<string, string>;
  tls: TlsOptions | undefined;
  signal: AbortSignal | undefined;
  /** How long to wait for response headers before giving up on this request. */
  timeoutMs: number;
  maxRedirects: number;
  allowedHosts?: readonly string[] | undefined;
  /** The fixed-buffer client unless 'node-http' is asked for (A/B benches, tests). */
  httpClient?: HttpClientChoice | undefined;
}

export interface OpenedResponse {
  res: DownloadResponse;
  /** Where the response actually came from, after redirects. */
  url: URL;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// Credentials meant for the artifact server must not be handed to whatever host it redirects to
// (typically a CDN), mirroring what browsers and curl do.
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie'];

export function parseDownloadUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DownloadError('DOWNLOAD_BAD_URL', `invalid download URL: ${JSON.stringify(raw.slice(0, 200))}`);
  }
  assertHttpScheme(url, 'download URL');
  return url;
}

function assertHttpScheme(url: URL, what: string): void {
  if (url.protocol === 'http:' || url.protocol === 'https:') return;
  throw new DownloadError(
    'DOWNLOAD_BAD_URL',
    `unsupported scheme "${url.protocol}" in ${what} ${describeUrl(url)} (only http and https are allowed)`,
  );
}

/** Sends GET requests until a non-redirect response arrives; the caller owns (and must destroy) it. */
export async function openResponse(start: URL, options: GetOptions): Promise<OpenedResponse> {
  let url = start;
  let headers = options.headers;
  for (let hop = 0; ; hop++) {
    const res = await sendGet(url, headers, options);
    const location = redirectLocation(res, url);
    if (location === undefined) return { res, url };
    res.destroy();
    if (hop >= options.maxRedirects) {
      throw new DownloadError(
        'DOWNLOAD_HTTP_STATUS',
        `too many redirects (more than ${options.maxRedirects}) while downloading ${describeUrl(start)}`,
        { status: res.status },
      );
    }
    const next = resolveRedirect(url, location);
    if (options.allowedHosts && !options.allowedHosts.includes(next.hostname)) {
      throw new DownloadError('DOWNLOAD_BAD_URL', `refusing redirect to host "${next.hostname}": not in the artifact host allow-list (${describeUrl(url)} -> ${describeUrl(next)})`);
    }
    if (next.origin !== url.origin) headers = withoutCredentials(headers);
    url = next;
  }
}

function redirectLocation(res: DownloadResponse, url: URL): string | undefined {
  const status = res.status;
  if (!REDIRECT_STATUSES.has(status)) return undefined;
  const location = res.header('location');
  if (location === undefined || location === '') {
    res.destroy();
    throw new DownloadError(
      'DOWNLOAD_HTTP_STATUS',
      `HTTP ${status} redirect without a Location header from ${describeUrl(url)}`,
      { status },
    );
  }
  return location;
}

function resolveRedirect(from: URL, location: string): URL {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new DownloadError(
      'DOWNLOAD_BAD_URL',
      `${describeUrl(from)} redirected to an invalid URL: ${JSON.stringify(location.slice(0, 200))}`,
    );
  }
  assertHttpScheme(next, `redirect target of ${describeUrl(from)}:`);
  // The caller vetted the scheme of the URL it gave us; a redirect must not quietly undo that.
  if (from.protocol === 'https:' && next.protocol === 'http:') {
    throw new DownloadError(
      'DOWNLOAD_BAD_URL',
      `refusing redirect from https to plain http: ${describeUrl(from)} -> ${describeUrl(next)}`,
    );
  }
  return next;
}

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  const kept = { ...headers };
  for (const name of CREDENTIAL_HEADERS) delete kept[name];
  return kept;
}


function sendGet(url: URL, headers: Record<string, string>, options: GetOptions): Promise<DownloadResponse> {
  if (options.httpClient !== 'node-http') {
    return rawGet(url, headers, { signal: options.signal, timeoutMs: options.timeoutMs, tls: options.tls });
  }
  return sendNodeGet(url, headers, options).then(fromIncomingMessage);
}

/** Node's http/https clients: kept as the reference the fixed-buffer client is measured against. */
function sendNodeGet(url: URL, headers: Record<string, string>, options: GetOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    // agent: false gives every attempt a fresh connection, so a retry never lands on the socket
    // that just failed, and the per-request TLS options are always honoured.
    const base: http.RequestOptions = { method: 'GET', headers, agent: false };
    if (options.signal !== undefined) base.signal = options.signal;
    const req =
      url.protocol === 'https:'
        ? https.request(url, { ...base, ...nodeTlsOptions(options.tls) })
        : http.request(url, base);
    const timer = setTimeout(() => {
      req.destroy(
        new DownloadError(
          'DOWNLOAD_NETWORK',
          `no response from ${describeUrl(url)} within ${options.timeoutMs / 1000}s`,
        ),
      );
    }, options.timeoutMs);
    req.on('response', (res) => {
      clearTimeout(timer);
      // Errors can fire before the caller starts reading; without a listener they would crash
      // the process. The caller still sees them through the stream's async iterator.
      res.on('error', () => undefined);
      resolve(res);
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}
