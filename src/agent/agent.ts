// The agent runtime: feeds incoming messages through admission, drives the lifecycle by running the
// effect of the current state and committing the event it returns, and tells the transport (MQTT)
// what to publish. It owns no I/O of its own beyond the store and the backend it is given.
import { EventEmitter } from 'node:events';
import type { BootInfo, RebootOutcome, UpdateBackend } from '../core/backend.js';
import { admitAnnouncement, channelKey, type AnnouncementDecision } from '../core/admission.js';
import { onResume, step, type EventInput } from '../core/machine.js';
import { effectFailpoint } from './failpoints.js';
import { CANCELLABLE_STATES, nextState, TERMINAL_STATES, type State } from '../core/transitions.js';
import type { FailureReason, RejectReason } from '../core/reasons.js';
import type { UpdateRecord } from '../core/update-record.js';
import type { Announcement } from '../schemas/announcement.js';
import type { TrustPolicy } from '../core/signed-message.js';
import type { Config } from '../config/schema.js';
import type { HealthCheckSpec, HealthVerdict } from '../health/schema.js';
import { topics, type Topics } from '../mqtt/topics.js';
import type { DeviceState } from '../schemas/device-messages.js';
import type { AgentStore } from '../store/agent-store.js';
import type { Logger } from '../util/log.js';
import { EFFECTS, finish, type EffectEnv, type EffectResult } from './effects.js';
import { handleCommand, type CommandDecision } from './commands.js';
import { rejectionEvent, transitionEvent } from './wire-events.js';
import { buildDeviceState } from './device-state.js';
import { RefusalBudget, describeSummary } from './refusal-budget.js';
import { checkLocalInstall, replyOf } from './local-install.js';
import type { ControlReply, ControlRequest } from '../control/protocol.js';

const FAIL_REASON_BY_STATE: Partial<Record<State, FailureReason>> = {
  accepted: 'DOWNLOAD_FAILED',
  deferred: 'DOWNLOAD_FAILED',
  downloading: 'DOWNLOAD_FAILED',
  installing: 'INSTALL_FAILED',
  'reboot-deferred': 'REBOOT_FAILED',
  rebooting: 'REBOOT_FAILED',
  verifying: 'HEALTH_CHECK_FAILED',
  committing: 'COMMIT_FAILED',
  reverting: 'REVERT_FAILED',
  'rolling-back': 'REVERT_FAILED',
};

export interface AgentDeps {
  config: Config;
  store: AgentStore;
  backend: UpdateBackend;
  trust: TrustPolicy;
  log: Logger;
  agentVersion: string;
  runChecks: (specs: readonly HealthCheckSpec[], signal: AbortSignal) => Promise<HealthVerdict>;
  now?: () => Date;
}

export interface AgentEvents {
  /** New events are in the outbox. */
  outbox: [];
  /** The retained state changed. */
  state: [DeviceState];
  /** A reboot is under way; a simulated one asks the process to exit. */
  reboot: [RebootOutcome];
}

/** How long refusals over the budget are counted before one RATE_LIMITED event reports them. */
const REFUSAL_SUMMARY_MS = 60_000;

export class Agent extends EventEmitter<AgentEvents> {
  readonly topics: Topics;
  private boot!: BootInfo;
  private readonly now: () => Date;
  private driving: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private rebooting = false;
  private effectAbort: AbortController | null = null;
  private effectState: UpdateRecord['state'] | null = null;
  private progress: { phase: string; percent: number } | null = null;
  private lastProgressEmit = 0;
  private windowTimer: NodeJS.Timeout | null = null;
  private readonly refusals: RefusalBudget;
  private refusalSummaryTimer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: AgentDeps) {
    super();
    this.now = deps.now ?? (() => new Date());
    this.topics = topics(deps.config.topicPrefix);
    const { refusalBurst, refusalsPerMinute } = deps.config.limits;
    this.refusals = new RefusalBudget({ burst: refusalBurst, perMinute: refusalsPerMinute });
  }

  get bootInfo(): BootInfo {
    return this.boot;
  }

  /** Reads what booted, resumes whatever was in flight, and starts driving. */
  async start(): Promise<void> {
    this.boot = await this.deps.backend.bootInfo();
    this.deps.store.setMeta('runningVersion', this.boot.version);
    this.deps.store.setMeta('bootedSlot', this.boot.bootedSlot);
    this.deps.store.setMeta('backend', this.deps.backend.name);
    const rec = this.deps.store.current();
    if (rec) {
      const decision = onResume(rec, this.deps.config.limits.maxResumes);
      this.deps.store.saveRecord(decision.record);
      this.deps.log.info({ updateId: rec.updateId, state: rec.state, resumes: decision.record.resumes }, 'resuming update');
      if (decision.action === 'loop') this.apply(decision.record, decision.event);
    }
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.reportSuppressedRefusals();
    this.effectAbort?.abort(new Error('agent stopping'));
    await this.driving?.catch(() => undefined);
  }

  /** Resolves when the lifecycle loop has nothing more to do right now (tests, CLI). */
  async idle(): Promise<void> {
    while (this.driving) await this.driving;
  }

  state(): DeviceState {
    return buildDeviceState({
      config: this.deps.config,
      store: this.deps.store,
      boot: this.boot,
      backendName: this.deps.backend.name,
      agentVersion: this.deps.agentVersion,
      progress: this.progress,
      now: this.now(),
    });
  }

  // ---- incoming messages -------------------------------------------------------------------

  handleAnnouncement(topic: string, raw: Uint8Array): AnnouncementDecision | null {
    const { config, store, log } = this.deps;
    if (raw.byteLength === 0) {
      // An empty retained message is how a fleet owner withdraws an announcement: nothing to refuse.
      log.info({ topic }, 'announcement withdrawn (empty retained message)');
      store.clearDigest(topic);
      return null;
    }
    const rec = store.current();
    const topicInfo = this.topics.parseAnnounce(topic);
    const decision = admitAnnouncement(raw, topic, {
      deviceId: config.deviceId,
      compatible: config.compatible,
      groups: config.groups,
      channels: config.channels,
      backend: this.deps.backend.handles,
      runningVersion: this.boot.version,
      trust: this.deps.trust,
      maxMessageBytes: config.limits.maxMessageBytes,
      clockSkewSeconds: config.limits.clockSkewSeconds,
      artifactPolicy: config.artifacts,
      now: this.now(),
      inFlight: rec ? { updateId: rec.updateId, version: rec.toVersion, state: rec.state } : null,
      lastSequence: (ch) => store.lastSequence(ch),
      lastDigest: (t) => store.lastDigest(t),
      previouslyReverted: (id) => store.wasReverted(id),
      topic: topicInfo,
    });
    const at = this.now().toISOString();
    const a = decision.kind !== 'reject' || decision.announcement ? decision.announcement : undefined;
    const subject = a ? `${a.id}@${a.version}` : null;

    if (decision.kind === 'ignore') {
      log.info({ topic, why: decision.why, subject }, decision.message);
      if (decision.why !== 'DUPLICATE') {
        store.db.transaction(() => {
          store.setDigest(topic, decision.digest);
          if (decision.advanceSequence && a) store.advanceSequence(channelKey(a.compatible, a.channel), a.sequence);
          store.addDecision({ at, topic, subject, decision: 'ignored', reason: decision.why, message: decision.message });
        })();
        this.emitState();
      }
      return decision;
    }
    if (decision.kind === 'reject') {
      if (!this.admitRefusal(decision.reason, topic, decision.digest)) {
        log.debug({ topic, reason: decision.reason }, `announcement refused (counted, over the refusal budget): ${decision.message}`);
        return decision;
      }
      log.warn({ topic, reason: decision.reason, subject }, `announcement refused: ${decision.message}`);
      store.db.transaction(() => {
        // Queued ones are remembered too, so a retained re-delivery on reconnect is not refused again.
        if (decision.reason === 'UPDATE_IN_PROGRESS') store.queueAnnouncement(topic, raw, at);
        store.setDigest(topic, decision.digest);
        store.recordEvent(this.topics.events(config.deviceId), rejectionEvent(config.deviceId, at, decision.reason, decision.message, a ? { updateId: a.id, version: a.version } : undefined), {
          at, topic, subject, decision: 'rejected', reason: decision.reason, message: decision.message,
        });
      })();
      this.emit('outbox');
      return decision;
    }

    const ann = decision.announcement;
    log.info({ topic, subject, bucket: decision.rollout.bucket }, decision.message);
    const record = this.newUpdate(ann, at);
    store.db.transaction(() => {
      store.setDigest(topic, decision.digest);
      store.advanceSequence(channelKey(ann.compatible, ann.channel), ann.sequence);
      store.addDecision({ at, topic, subject, decision: 'accepted', reason: null, message: decision.message });
      this.apply(record, { type: 'ACCEPT', message: decision.message });
    })();
    this.kick();
    return decision;
  }

  /** An offline install requested over the control socket (`ota-agent install`). */
  async handleLocalInstall(req: Extract<ControlRequest, { cmd: 'install' }>): Promise<ControlReply> {
    const { store, config, log } = this.deps;
    const rec = store.current();
    const check = await checkLocalInstall(req, {
      backend: this.deps.backend,
      compatible: config.compatible,
      runningVersion: this.boot.version,
      inFlight: rec ? `${rec.updateId} (${rec.state})` : null,
      now: this.now(),
    });
    const at = this.now().toISOString();
    const topic = 'local/install';
    if (!check.ok) {
      log.warn({ path: req.path, reason: check.reason }, `local install refused: ${check.message}`);
      this.recordRejection(check.reason, check.message, topic, {});
      return replyOf(check);
    }
    const ann = check.plan.announcement;
    if (store.current()) return { ok: false, reason: 'UPDATE_IN_PROGRESS', message: 'an update started meanwhile' };
    const record = this.newUpdate(ann, at);
    store.db.transaction(() => {
      store.addDecision({ at, topic, subject: `${ann.id}@${ann.version}`, decision: 'accepted', reason: null, message: `local install of ${req.path}` });
      this.apply(record, { type: 'ACCEPT', message: `local install of ${req.path}` });
    })();
    this.kick();
    return replyOf(check);
  }

  async handleCommand(topic: string, raw: Uint8Array): Promise<CommandDecision> {
    return handleCommand(this.commandHost(), topic, raw);
  }

  private commandHost() {
    return {
      deps: this.deps,
      topics: this.topics,
      boot: this.boot,
      now: this.now,
      emitOutbox: () => this.emit('outbox'),
      admitRefusal: (reason: RejectReason, topic: string) => this.admitRefusal(reason, topic),
      startRollback: (record: UpdateRecord, message: string) => {
        this.apply(record, { type: 'ROLLBACK', message });
        this.kick();
      },
      allowReboot: (record: UpdateRecord, message: string) => {
        this.apply(record, { type: 'WINDOW_OPEN', message });
        this.kick();
      },
      requestCancel: (record: UpdateRecord, message: string) => {
        // Committed in the same transaction as the command's acceptance: an accepted cancel that
        // lived only in memory was lost when the agent died before applying it (tests/faults).
        this.apply(record, { type: 'CANCEL', reason: 'CANCELLED', message });
        // Abort only an effect that may be cancelled; an install in progress runs to its end.
        if (this.effectState && CANCELLABLE_STATES.includes(this.effectState)) this.effectAbort?.abort(new Error('cancelled'));
        this.kick();
      },
    };
  }

  /** A fresh update record in `idle`, from what runs now to what `ann` announces. */
  private newUpdate(ann: Announcement, at: string): UpdateRecord {
    return {
      updateId: ann.id,
      kind: 'update',
      state: 'idle',
      announcement: ann,
      fromVersion: this.boot.version,
      toVersion: ann.version,
      oldSlot: this.boot.bootedSlot,
      bootId: this.boot.bootId,
      transitions: 0,
      resumes: 0,
      startedAt: at,
      updatedAt: at,
    };
  }

  // ---- the lifecycle loop ------------------------------------------------------------------

  /** Commits one lifecycle event: the record, the transition row and the event, atomically. */
  private apply(rec: UpdateRecord, input: EventInput): UpdateRecord {
    const { store, config, log } = this.deps;
    const r = step(rec, input, { now: this.now().toISOString(), bootId: this.boot.bootId, maxTransitions: config.limits.maxTransitions });
    if (!r.ok) throw new Error(r.error);
    const next = r.record;
    const closing = input.type === 'CLOSE';
    const terminal = TERMINAL_STATES.includes(next.state);
    store.commitTransition({
      record: closing ? null : next,
      transition: { updateId: next.updateId, from: r.from, event: r.event.type, to: r.to, at: next.updatedAt },
      topic: this.topics.events(config.deviceId),
      events: closing ? [] : [transitionEvent(config.deviceId, next, r.from, r.event)],
      ...(terminal && next.outcome
        ? {
            history: {
              updateId: next.updateId,
              kind: next.kind,
              fromVersion: next.fromVersion,
              toVersion: next.toVersion,
              result: next.outcome.result,
              reason: next.outcome.reason ?? null,
              message: next.outcome.message,
              startedAt: next.startedAt,
              finishedAt: next.updatedAt,
            },
          }
        : {}),
    });
    log.info({ updateId: next.updateId, from: r.from, event: r.event.type, to: r.to, ...(next.outcome && terminal ? { result: next.outcome.result, reason: next.outcome.reason } : {}) }, `${r.from} -> ${r.to}`);
    this.progress = null;
    // After the surrounding transaction has committed: nothing may be published that could still roll back.
    queueMicrotask(() => {
      if (!closing) this.emit('outbox');
      this.emitState();
    });
    return next;
  }

  private kick(): void {
    if (this.stopped || this.rebooting) return;
    if (this.driving) {
      this.again = true;
      return;
    }
    // Never synchronously: kick() is also called inside the SQLite transaction that commits a
    // command's transition, and an effect must not start before that commit (tests/faults found an
    // effect that ran, and crashed the agent, while the rollback it belonged to was uncommitted).
    this.driving = Promise.resolve()
      .then(() => this.drive())
      .catch((e: unknown) => this.deps.log.error({ err: e instanceof Error ? e.stack : String(e) }, 'lifecycle loop failed'))
      .finally(() => {
        this.driving = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async drive(): Promise<void> {
    if (this.windowTimer) {
      clearTimeout(this.windowTimer);
      this.windowTimer = null;
    }
    while (!this.stopped && !this.rebooting) {
      const rec = this.deps.store.current();
      if (!rec) {
        if (!this.processQueued()) return;
        continue;
      }
      let result: EffectResult | null;
      try {
        result = await this.runEffect(rec);
      } catch (e) {
        // An effect that throws is a bug or an unforeseen failure: end the update with a reason
        // rather than leave it stuck in its state until the next restart.
        const message = `unexpected error in ${rec.state}: ${e instanceof Error ? e.message : String(e)}`;
        this.deps.log.error({ updateId: rec.updateId, err: e instanceof Error ? e.stack : String(e) }, message);
        if (!nextState(rec.state, 'FAIL')) {
          this.scheduleWake(new Date(this.now().getTime() + 30_000));
          return;
        }
        result = { kind: 'event', event: { type: 'FAIL', reason: FAIL_REASON_BY_STATE[rec.state] ?? 'INSTALL_FAILED', message } };
      }
      if (result === null) continue; // aborted by a cancel: loop to finish the cancelled update
      // A command may have moved the update on while the effect ran: its result is then stale.
      const now = this.deps.store.current();
      if (!now || now.state !== rec.state || now.transitions !== rec.transitions) continue;
      if (result.kind === 'wait') {
        if (result.until) this.scheduleWake(result.until);
        return;
      }
      if (result.kind === 'reboot') {
        this.rebooting = true;
        this.deps.log.info({ updateId: rec.updateId, outcome: result.outcome.kind }, 'reboot requested');
        this.emit('reboot', result.outcome);
        return;
      }
      this.apply(rec, result.event);
    }
  }

  private async runEffect(rec: UpdateRecord): Promise<EffectResult | null> {
    const abort = new AbortController();
    this.effectAbort = abort;
    this.effectState = rec.state;
    const env: EffectEnv = {
      backend: this.deps.backend,
      boot: this.boot,
      checks: this.deps.config.healthChecks,
      rebootOnCommand: this.deps.config.reboot.waitForCommand,
      runChecks: this.deps.runChecks,
      now: this.now,
      signal: abort.signal,
      progress: (phase, percent) => this.setProgress(phase, percent),
      log: this.deps.log,
    };
    try {
      if (TERMINAL_STATES.includes(rec.state)) return await finish(rec, env);
      const effect = EFFECTS[rec.state];
      if (!effect) throw new Error(`no effect for state ${rec.state}`);
      await effectFailpoint(rec.state, abort.signal);
      return await effect(rec, env);
    } catch (e) {
      // Aborted because a command moved the update on (a cancel), or because the agent stops.
      if (abort.signal.aborted && (this.stopped || this.deps.store.current()?.transitions !== rec.transitions)) return null;
      throw e;
    } finally {
      this.effectAbort = null;
      this.effectState = null;
    }
  }

  private scheduleWake(until: Date): void {
    // Re-check at least hourly: a long timer would drift across suspend or clock changes.
    const ms = Math.max(1000, Math.min(until.getTime() - this.now().getTime(), 3600_000));
    this.windowTimer = setTimeout(() => this.kick(), ms);
    this.windowTimer.unref?.();
  }

  /** After an update ends, announcements that arrived meanwhile get their turn. */
  private processQueued(): boolean {
    const queued = this.deps.store.takeQueuedAnnouncements();
    let accepted = false;
    for (const q of queued) {
      this.deps.store.clearDigest(q.topic); // decided "later", and later is now
      const d = this.handleAnnouncement(q.topic, q.raw);
      if (d?.kind === 'accept') accepted = true;
    }
    return accepted;
  }

  private setProgress(phase: string, percent: number): void {
    this.progress = { phase, percent: Math.max(0, Math.min(100, Math.round(percent * 10) / 10)) };
    const t = Date.now();
    if (t - this.lastProgressEmit >= 1000 || percent >= 100) {
      this.lastProgressEmit = t;
      this.emitState();
    }
  }

  private emitState(): void {
    if (this.boot) this.emit('state', this.state());
  }

  /** False when this refusal is only counted (src/agent/refusal-budget.ts); a summary follows. */
  private admitRefusal(reason: RejectReason, topic: string, digest?: string): boolean {
    if (this.refusals.admit(reason, topic, digest)) return true;
    if (this.refusalSummaryTimer === null) {
      this.deps.log.warn({ reason, topic }, 'refusal budget spent: further refusals of unauthenticated or repeated messages are counted and reported once a minute');
      this.refusalSummaryTimer = setTimeout(() => this.reportSuppressedRefusals(), REFUSAL_SUMMARY_MS);
      this.refusalSummaryTimer.unref?.();
    }
    return false;
  }

  private reportSuppressedRefusals(): void {
    if (this.refusalSummaryTimer) clearTimeout(this.refusalSummaryTimer);
    this.refusalSummaryTimer = null;
    const summary = this.refusals.takeSummary();
    if (!summary) return;
    const message = describeSummary(summary);
    this.deps.log.warn({ reason: 'RATE_LIMITED', total: summary.total, byReason: summary.byReason }, message);
    this.recordRejection('RATE_LIMITED', message, summary.topics.join(' '));
  }

  /** Records a refusal that is not about an announcement. */
  private recordRejection(reason: Parameters<typeof rejectionEvent>[2], message: string, topic: string, subject?: { updateId?: string; command?: string }): void {
    const at = this.now().toISOString();
    this.deps.store.recordEvent(this.topics.events(this.deps.config.deviceId), rejectionEvent(this.deps.config.deviceId, at, reason, message, subject), {
      at, topic, subject: subject?.command ?? null, decision: 'rejected', reason, message,
    });
    this.emit('outbox');
  }
}
