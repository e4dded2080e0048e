// Follows one rpm-ostree transaction over its peer-to-peer D-Bus socket.
//
// Every rpm-ostree method that changes the system returns the address of a private D-Bus server
// (unix:path=/run/rpm-ostree-transaction.sock) rather than a result. The client connects to it
// *directly* — no bus daemon, so no Hello, no bus names, no destinations — calls Start() on "/"
// (org.projectatomic.rpmostree1.Transaction) and reads signals until Finished(b success, s error).
//
// Why not dbus-next's MessageBus: its constructor always sends org.freedesktop.DBus.Hello, which a
// peer answers with an error, and the failure surfaces as an unhandled rejection; dbus-next has no
// public peer-to-peer client. Its low-level connection (lib/connection.js: socket, SASL EXTERNAL,
// marshalling) works on a peer socket as it is, so this module uses that plus its public Message
// type, and does the little a peer needs itself: serials, matching the Start reply, dispatching
// signals. lib/connection.js is not dbus-next's public API: package.json pins dbus-next exactly.
import { createRequire } from 'node:module';
import { EventEmitter } from 'node:events';
import dbus from 'dbus-next';
import { TRANSACTION_IFACE } from './interface.js';

interface RawConnection extends EventEmitter {
  message(msg: dbus.Message): void;
  end(): void;
}
type CreateConnection = (opts: { busAddress: string }) => RawConnection;
const createConnection = createRequire(import.meta.url)('dbus-next/lib/connection.js') as CreateConnection;

export interface TransactionProgress {
  /** Message(s): free text, line-buffered. */
  onMessage?: (text: string) => void;
  /** PercentProgress(s, u). */
  onPercent?: (text: string, percent: number) => void;
  /** TaskBegin / TaskEnd. */
  onTask?: (phase: 'begin' | 'end', text: string) => void;
}

export interface TransactionOutcome {
  success: boolean;
  /** Finished's error_message ('' on success). */
  error: string;
  /** Start()'s answer: true if this call started it, false if it was already running (re-attached). */
  started: boolean;
  /** The Message texts seen, last ones kept (for error reports). */
  messages: string[];
}

export class TransactionError extends Error {}

/**
 * Connects to a transaction address, calls Start and resolves with Finished. Rejects when the
 * peer goes away before Finished, on timeout, or when `signal` aborts (the transaction itself
 * goes on in the daemon; a later call can re-attach through Sysroot.ActiveTransactionPath).
 */
export function followTransaction(address: string, opts: TransactionProgress & { timeoutMs: number; signal?: AbortSignal }): Promise<TransactionOutcome> {
  if (!/^unix:(path|abstract)=/.test(address)) return Promise.reject(new TransactionError(`unexpected transaction address "${address}" (expected unix:path=...)`));
  return new Promise<TransactionOutcome>((resolve, reject) => {
    const messages: string[] = [];
    let started: boolean | undefined;
    let finished: { success: boolean; error: string } | undefined;
    let settled = false;
    const conn = createConnection({ busAddress: address });
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      try {
        conn.end();
      } catch {
        // already closed
      }
      if (err) reject(err);
      else resolve({ ...(finished as { success: boolean; error: string }), started: started ?? false, messages });
    };
    // Finished may come before Start's reply (a late client gets it right after); both are needed.
    const maybeDone = () => {
      if (finished && started !== undefined) done();
    };
    const timer = setTimeout(() => done(new TransactionError(`the transaction at ${address} did not finish within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    timer.unref();
    const onAbort = () => done(new TransactionError('stopped following the transaction: the agent is stopping (the transaction goes on in rpm-ostree)'));
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    conn.on('error', (e: unknown) => done(new TransactionError(`transaction connection ${address}: ${e instanceof Error ? e.message : String(e)}`)));
    conn.on('end', () => done(new TransactionError(`the transaction at ${address} closed before it finished`)));
    conn.on('message', (msg: dbus.Message) => {
      if (msg.type === dbus.MessageType.METHOD_RETURN && Number(msg.replySerial) === START_SERIAL) {
        started = Boolean(msg.body[0]);
        maybeDone();
      } else if (msg.type === dbus.MessageType.ERROR && Number(msg.replySerial) === START_SERIAL) {
        done(new TransactionError(`Start failed: ${msg.errorName ?? ''} ${String(msg.body[0] ?? '')}`.trim()));
      } else if (msg.type === dbus.MessageType.SIGNAL && msg.interface === TRANSACTION_IFACE) {
        const body = msg.body as unknown[];
        switch (msg.member) {
          case 'Finished':
            finished = { success: Boolean(body[0]), error: String(body[1] ?? '') };
            maybeDone();
            break;
          case 'Message':
            messages.push(String(body[0]));
            if (messages.length > 50) messages.shift();
            opts.onMessage?.(String(body[0]));
            break;
          case 'PercentProgress':
            opts.onPercent?.(String(body[0]), Number(body[1]));
            break;
          case 'TaskBegin':
          case 'TaskEnd':
            opts.onTask?.(msg.member === 'TaskBegin' ? 'begin' : 'end', String(body[0]));
            break;
          default:
            break; // DownloadProgress, SignatureProgress, ProgressEnd: PercentProgress says enough
        }
      }
    });
    // Buffered by the connection until the SASL handshake is done.
    conn.message(new dbus.Message({ serial: START_SERIAL, path: '/', interface: TRANSACTION_IFACE, member: 'Start' }));
  });
}

const START_SERIAL = 1;
