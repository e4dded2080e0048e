export type DownloadErrorCode =
  | 'DOWNLOAD_BAD_URL'
  | 'DOWNLOAD_HTTP_STATUS'
  | 'DOWNLOAD_SIZE_MISMATCH'
  | 'DOWNLOAD_HASH_MISMATCH'
  | 'DOWNLOAD_NETWORK'
  | 'DOWNLOAD_NO_SPACE'
  | 'DOWNLOAD_ABORTED'
  | 'DOWNLOAD_TOO_LARGE';

// Only transport trouble is transient by default; every other code needs a different server
// response, more disk or a new request before a retry can succeed.
const RETRYABLE_BY_DEFAULT: Record<DownloadErrorCode, boolean> = {
  DOWNLOAD_BAD_URL: false,
  DOWNLOAD_HTTP_STATUS: false,
  DOWNLOAD_SIZE_MISMATCH: false,
  DOWNLOAD_HASH_MISMATCH: false,
  DOWNLOAD_NETWORK: true,
  DOWNLOAD_NO_SPACE: false,
  DOWNLOAD_ABORTED: false,
  DOWNLOAD_TOO_LARGE: false,
};

export interface DownloadErrorOptions {
  retryable?: boolean;
  /** HTTP status code, when the failure came from a response status. */
  status?: number;
  cause?: unknown;
}

/**
 * A download failure whose message is meant for fleet owners. `retryable` means the same request
 * may succeed later without anyone changing anything (a transient failure).
 */
export class DownloadError extends Error {
  readonly code: DownloadErrorCode;
  readonly retryable: boolean;
  readonly status?: number;

  constructor(code: DownloadErrorCode, message: string, options: DownloadErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DownloadError';
    this.code = code;
    this.retryable = options.retryable ?? RETRYABLE_BY_DEFAULT[code];
    if (options.status !== undefined) this.status = options.status;
  }
}

/**
 * URL as it may appear in messages: artifact URLs are often pre-signed, and the query string or
 * userinfo would leak credentials into events that fleet owners (and their log pipelines) see.
 */
export function describeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
