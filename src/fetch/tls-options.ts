// The TLS settings a download may carry, and their one translation into Node's options (the same
// for https.request and tls.connect): only the fields that are set, so Node's defaults stay.
import type { ConnectionOptions } from 'node:tls';

export interface TlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
}

export function nodeTlsOptions(options: TlsOptions | undefined): Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> {
  const out: Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> = {};
  if (options?.ca !== undefined) out.ca = options.ca;
  if (options?.cert !== undefined) out.cert = options.cert;
  if (options?.key !== undefined) out.key = options.key;
  if (options?.rejectUnauthorized !== undefined) out.rejectUnauthorized = options.rejectUnauthorized;
  return out;
}
