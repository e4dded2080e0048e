// The whole update lifecycle on one screen. Every path, including every failure path, is a row
// here; anything not listed is illegal and refused by the machine (src/core/machine.ts).
// Effects (downloading, installing, rebooting, ...) are not here: the agent runs them on entering a
// state, after the transition has been committed to SQLite.

export const STATES = [
  'idle', // nothing in flight
  'accepted', // announcement admitted; the window decides what comes next
  'deferred', // waiting for the maintenance window before downloading
  'downloading',
  'installing', // writing the inactive slot / staging the deployment
  'reboot-deferred', // installed; waiting for the maintenance window to reboot
  'rebooting', // target persisted, reboot requested; the next boot decides
  'verifying', // booted the new slot: health checks run
  'committing', // checks passed: marking the new slot good
  'reverting', // checks failed: marking it bad, activating the old slot, rebooting
  'rolling-back', // a rollback command: activating the previous slot, rebooting
  'committed', // terminal: the new boot passed its checks and is marked good
  'reverted', // terminal: back on the old slot (checks failed, fallback, or rollback)
  'failed', // terminal: the update did not happen; the device runs what it ran before
  'cancelled', // terminal: cancelled by command before it was installed
] as const;
export type State = (typeof STATES)[number];

export const EVENTS = [
  'ACCEPT',
  'PROCEED',
  'WAIT_WINDOW',
  'WINDOW_OPEN',
  'DOWNLOADED',
  'INSTALLED',
  'INSTALLED_WAIT_WINDOW',
  'BOOTED_NEW', // the boot after a reboot came up on the slot we switched to
  'BOOTED_OLD', // ... came up on the slot that ran before (the bootloader fell back, or a revert took)
  'CHECKS_PASSED',
  'CHECKS_FAILED',
  'MARKED_GOOD',
  'FAIL',
  'CANCEL',
  'ROLLBACK',
  'LOOP_DETECTED',
  'CLOSE',
] as const;
export type LifecycleEvent = (typeof EVENTS)[number];

export const TERMINAL_STATES: readonly State[] = ['committed', 'reverted', 'failed', 'cancelled'];

/** An update can be cancelled until its install starts (the table has CANCEL rows for exactly these). */
export const CANCELLABLE_STATES: readonly State[] = ['accepted', 'deferred', 'downloading'];


//        from               event                     to
export const TRANSITIONS: ReadonlyArray<readonly [State, LifecycleEvent, State]> = [
  ['idle',            'ACCEPT',                'accepted'],
  ['idle',            'ROLLBACK',              'rolling-back'],

  ['accepted',        'PROCEED',               'downloading'],
  ['accepted',        'WAIT_WINDOW',           'deferred'],
  ['accepted',        'CANCEL',                'cancelled'],
  ['accepted',        'FAIL',                  'failed'],
  ['accepted',        'LOOP_DETECTED',         'failed'],

  ['deferred',        'WINDOW_OPEN',           'downloading'],
  ['deferred',        'CANCEL',                'cancelled'],
  ['deferred',        'FAIL',                  'failed'],
  ['deferred',        'LOOP_DETECTED',         'failed'],

  ['downloading',     'DOWNLOADED',            'installing'],
  ['downloading',     'CANCEL',                'cancelled'],
  ['downloading',     'FAIL',                  'failed'],
  ['downloading',     'LOOP_DETECTED',         'failed'],

  ['installing',      'INSTALLED',             'rebooting'],
  ['installing',      'INSTALLED_WAIT_WINDOW', 'reboot-deferred'],
  ['installing',      'BOOTED_NEW',            'verifying'],  // power lost after the install chose the new slot, before INSTALLED was written
  ['installing',      'FAIL',                  'failed'],
  ['installing',      'LOOP_DETECTED',         'failed'],

  ['reboot-deferred', 'WINDOW_OPEN',           'rebooting'],
  ['reboot-deferred', 'FAIL',                  'failed'],
  ['reboot-deferred', 'LOOP_DETECTED',         'failed'],

  ['rebooting',       'BOOTED_NEW',            'verifying'],
  ['rebooting',       'BOOTED_OLD',            'reverted'],   // bootloader fallback: never success
  ['rebooting',       'FAIL',                  'failed'],
  ['rebooting',       'LOOP_DETECTED',         'failed'],

  ['verifying',       'CHECKS_PASSED',         'committing'],
  ['verifying',       'CHECKS_FAILED',         'reverting'],
  ['verifying',       'FAIL',                  'reverting'],
  ['verifying',       'LOOP_DETECTED',         'reverting'],  // a new slot that keeps killing the agent goes back

  ['committing',      'MARKED_GOOD',           'committed'],
  ['committing',      'FAIL',                  'reverting'],
  ['committing',      'LOOP_DETECTED',         'reverting'],

  ['reverting',       'BOOTED_OLD',            'reverted'],
  ['reverting',       'BOOTED_NEW',            'failed'],     // the revert did not take
  ['reverting',       'FAIL',                  'failed'],
  ['reverting',       'LOOP_DETECTED',         'failed'],

  ['rolling-back',    'BOOTED_NEW',            'reverted'],   // "new" = the slot we rolled back to
  ['rolling-back',    'BOOTED_OLD',            'failed'],
  ['rolling-back',    'FAIL',                  'failed'],
  ['rolling-back',    'LOOP_DETECTED',         'failed'],

  ['committed',       'CLOSE',                 'idle'],
  ['reverted',        'CLOSE',                 'idle'],
  ['failed',          'CLOSE',                 'idle'],
  ['cancelled',       'CLOSE',                 'idle'],
];

const index = new Map<string, State>(TRANSITIONS.map(([from, ev, to]) => [`${from}|${ev}`, to]));

/** The target of `event` in `from`, or undefined when the table has no such row. */
export function nextState(from: State, event: LifecycleEvent): State | undefined {
  return index.get(`${from}|${event}`);
}
