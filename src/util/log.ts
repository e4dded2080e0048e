// Structured JSON logs on stdout, one line per entry (journald stores them as-is). Secrets are
// redacted by path so a debug log can be shared safely.
//
// Our own ~150 lines instead of pino: the agent uses levels, child bindings and redaction only,
// and pino with its helpers (sonic-boom, thread-stream, fast-redact, ...) cost about 2.5 MiB of the
// idle footprint (docs/performance.md). The line format is pino's, so tools that read pino logs
// (pino-pretty, jq filters on `level`/`msg`) keep working: numeric levels, ISO `time`, `pid`,
// `name`, the bindings, the fields, then `msg`.
//
// Lines are written synchronously (process.stdout is synchronous for files and pipes on Linux):
// a line is out before the next step runs, so kill -9 loses none, and the agent logs little.

export const REDACT_PATHS = [
  'password',
  '*.password',
  'mqtt.password',
  'config.mqtt.password',
  '*.privateKey',
  '*.privateKeyPem',
  'key',
  '*.key',
  'headers.authorization',
  '*.headers.authorization',
];
const CENSOR = '[redacted]';

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;
type LevelName = keyof typeof LEVELS;

/** Where lines go: anything with write(string), e.g. process.stdout or a Writable. */
export interface LogDestination {
  write(line: string): unknown;
}

export interface LogFn {
  (fields: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  /** The threshold; setting it changes this logger only (children keep the level they had). */
  level: string;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  child(bindings: Record<string, unknown>): Logger;
  isLevelEnabled(level: string): boolean;
}

function levelValue(level: string): number {
  const v = (LEVELS as Record<string, number>)[level];
  if (v === undefined) throw new Error(`unknown log level "${level}" (known: ${Object.keys(LEVELS).join(', ')})`);
  return v;
}

/** An Error as pino's err serializer writes it: type, message, stack and own fields (code, ...). */
function errorFields(e: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { type: e.constructor.name, message: e.message, stack: e.stack };
  for (const [k, v] of Object.entries(e)) if (!(k in out)) out[k] = v;
  if (e.cause !== undefined) out.cause = e.cause instanceof Error ? errorFields(e.cause) : e.cause;
  return out;
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return errorFields(value);
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** JSON that never throws: a circular reference becomes "[Circular]". */
function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, replacer) ?? 'null';
  } catch {
    const ancestors: unknown[] = [];
    return JSON.stringify(value, function (this: unknown, key: string, v: unknown) {
      // `this` is the object holding `key`: drop ancestors that are not on this path any more.
      while (ancestors.length > 0 && ancestors.at(-1) !== this) ancestors.pop();
      const r = replacer(key, v);
      if (r !== null && typeof r === 'object') {
        if (ancestors.includes(r)) return '[Circular]';
        ancestors.push(r);
      }
      return r;
    });
  }
}

const PATHS = REDACT_PATHS.map((p) => p.split('.'));

/** A copy of `obj` with every REDACT_PATHS match censored; `obj` itself is left as it was. */
export function redact(obj: Record<string, unknown>): Record<string, unknown> {
  let out = obj;
  for (const path of PATHS) out = redactPath(out, path, 0, out === obj);
  return out;
}

function redactPath(node: Record<string, unknown>, path: string[], i: number, mustCopy: boolean): Record<string, unknown> {
  const seg = path[i] as string;
  const last = i === path.length - 1;
  const keys = seg === '*' ? Object.keys(node) : Object.hasOwn(node, seg) ? [seg] : [];
  let out = node;
  for (const k of keys) {
    const v = node[k];
    let nv: unknown = v;
    if (last) nv = CENSOR;
    else if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Error)) nv = redactPath(v as Record<string, unknown>, path, i + 1, true);
    if (nv !== v) {
      if (out === node && mustCopy) out = { ...node };
      out[k] = nv;
    }
  }
  return out;
}

class JsonLogger implements Logger {
  private threshold: number;

  constructor(
    private readonly dest: LogDestination,
    /** `"name":…,"pid":…` and the bindings, already serialized (with a leading comma). */
    private readonly head: string,
    level: string,
  ) {
    this.threshold = levelValue(level);
  }

  get level(): string {
    return (Object.keys(LEVELS) as LevelName[]).find((k) => LEVELS[k] === this.threshold) ?? 'info';
  }

  set level(l: string) {
    this.threshold = levelValue(l);
  }

  isLevelEnabled(level: string): boolean {
    return levelValue(level) >= this.threshold;
  }

  child(bindings: Record<string, unknown>): Logger {
    const b = safeJson(redact(bindings)).slice(1, -1);
    return new JsonLogger(this.dest, b ? `${this.head},${b}` : this.head, this.level);
  }

  private write(value: number, a: object | string, b?: string): void {
    if (value < this.threshold) return;
    let fields = '';
    let msg = typeof a === 'string' ? a : b;
    if (typeof a === 'object' && a !== null) {
      // As pino: an Error given as the fields is logged under `err`, its message as the default msg.
      const obj = a instanceof Error ? { err: a } : (a as Record<string, unknown>);
      if (a instanceof Error) msg ??= a.message;
      fields = safeJson(redact(obj)).slice(1, -1);
    }
    const line = `{"level":${value},"time":"${new Date().toISOString()}"${this.head}${fields ? `,${fields}` : ''}${msg !== undefined ? `,"msg":${JSON.stringify(msg)}` : ''}}\n`;
    try {
      this.dest.write(line);
    } catch {
      // A log line that cannot be written (a closed pipe) must not stop the agent.
    }
  }

  trace: LogFn = (a: object | string, b?: string) => this.write(10, a, b);
  debug: LogFn = (a: object | string, b?: string) => this.write(20, a, b);
  info: LogFn = (a: object | string, b?: string) => this.write(30, a, b);
  warn: LogFn = (a: object | string, b?: string) => this.write(40, a, b);
  error: LogFn = (a: object | string, b?: string) => this.write(50, a, b);
  fatal: LogFn = (a: object | string, b?: string) => this.write(60, a, b);
}

let stdoutGuarded = false;
/** process.stdout, with an 'error' listener: a reader that went away (EPIPE) must not crash the agent. */
export function stdoutDestination(): LogDestination {
  if (!stdoutGuarded) {
    process.stdout.on('error', () => undefined);
    stdoutGuarded = true;
  }
  return process.stdout;
}

export function createLogger(level: string, name = 'ota-agent', destination?: LogDestination): Logger {
  return new JsonLogger(destination ?? stdoutDestination(), `,"pid":${process.pid},"name":${JSON.stringify(name)}`, level);
}

/** A logger that writes nothing, for CLI commands that print their own output. */
export function silentLogger(): Logger {
  return new JsonLogger({ write: () => true }, '', 'silent');
}
