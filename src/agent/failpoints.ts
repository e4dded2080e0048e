// FAULT INJECTION for the reliability harness (tests/faults/, docs/reliability.md), like the crash
// points next to it. Some lifecycle rows are only taken when one particular call goes wrong (marking a
// slot good, switching back, requesting the reboot) or when the agent keeps dying in one state; a
// test cannot make a real RAUC or bootloader do that on cue. Inert unless the environment variable is
// set, and a device never sets it:
//
//   OTA_AGENT_FAILPOINTS=<point>=<action>[,<point>=<action>...]
//     backend.<method>=throw   the backend call fails ("injected fault at backend.<method>")
//     backend.<method>=skip    the call returns without doing anything (a bootloader that ignores
//                              the switch); only for calls that return nothing
//     backend.<method>=crash-after  the call runs, then the agent SIGKILLs itself before it can
//                              record the result (the power going right after an install)
//     effect.<state>=throw     the state's effect fails unexpectedly as it starts
//     effect.<state>=hang      the effect never finishes on its own (until a command aborts it)
//     effect.<state>=crash     the agent SIGKILLs itself as the effect starts, on every start
//
// The spec is checked once, at start: a malformed one stops the agent with the reason.
import type { UpdateBackend } from '../core/backend.js';
import { STATES } from '../core/transitions.js';

type Action = 'throw' | 'skip' | 'hang' | 'crash' | 'crash-after';

/** Backend calls that return nothing, so "skip" has a meaning for them. */
const SKIPPABLE = new Set(['markGood', 'revert', 'activateRollback', 'keepBootedSlot', 'discardDownload']);
const BACKEND_METHODS = new Set(['bootInfo', 'slots', 'inspectArtifact', 'download', 'install', 'reboot', 'rollbackTarget', ...SKIPPABLE]);

export class FailpointSpecError extends Error {}

export function parseFailpoints(spec: string | undefined): Map<string, Action> {
  const points = new Map<string, Action>();
  for (const item of (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(backend|effect)\.([a-zA-Z-]+)=(throw|skip|hang|crash-after|crash)$/.exec(item);
    if (!m) throw new FailpointSpecError(`OTA_AGENT_FAILPOINTS: "${item}" is not <backend.method|effect.state>=<throw|skip|hang|crash|crash-after>`);
    const [, kind, name, action] = m as unknown as [string, 'backend' | 'effect', string, Action];
    if (kind === 'backend') {
      if (!BACKEND_METHODS.has(name)) throw new FailpointSpecError(`OTA_AGENT_FAILPOINTS: no backend call "${name}"`);
      if (action === 'hang' || action === 'crash') throw new FailpointSpecError(`OTA_AGENT_FAILPOINTS: "${action}" is for effects, not backend calls`);
      if (action === 'skip' && !SKIPPABLE.has(name)) throw new FailpointSpecError(`OTA_AGENT_FAILPOINTS: backend.${name} returns a value and cannot be skipped`);
    } else {
      if (!(STATES as readonly string[]).includes(name)) throw new FailpointSpecError(`OTA_AGENT_FAILPOINTS: no state "${name}"`);
      if (action === 'skip' || action === 'crash-after') throw new FailpointSpecError(`OTA_AGENT_FAILPOINTS: "${action}" is for backend calls, not effects`);
    }
    points.set(`${kind}.${name}`, action);
  }
  return points;
}

let active: Map<string, Action> | undefined;
function points(): Map<string, Action> {
  active ??= parseFailpoints(process.env.OTA_AGENT_FAILPOINTS);
  return active;
}

const injected = (point: string) => new Error(`injected fault at ${point}`);

/** The backend itself when no backend failpoint is set; otherwise a wrapper that fails the named calls. */
export function withFailpoints(backend: UpdateBackend): UpdateBackend {
  const set = [...points()].filter(([p]) => p.startsWith('backend.'));
  if (set.length === 0) return backend;
  const actions = new Map(set.map(([p, a]) => [p.slice('backend.'.length), a]));
  return new Proxy(backend, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      const action = typeof prop === 'string' ? actions.get(prop) : undefined;
      if (!action || typeof value !== 'function') return value;
      if (action === 'crash-after') {
        return async (...args: unknown[]) => {
          await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          process.kill(process.pid, 'SIGKILL');
        };
      }
      return () => (action === 'skip' ? Promise.resolve() : Promise.reject(injected(`backend.${String(prop)}`)));
    },
  });
}

/** Called as a state's effect starts. */
export async function effectFailpoint(state: string, signal: AbortSignal): Promise<void> {
  const action = points().get(`effect.${state}`);
  if (!action) return;
  if (action === 'crash') process.kill(process.pid, 'SIGKILL');
  if (action === 'throw') throw injected(`effect.${state}`);
  if (action === 'hang') {
    await new Promise<never>((_, reject) => {
      if (signal.aborted) reject(injected(`effect.${state} (aborted)`));
      signal.addEventListener('abort', () => reject(injected(`effect.${state} (aborted)`)), { once: true });
    });
  }
}
