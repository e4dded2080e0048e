// `ota-agent plan FILE`: what the agent would do with an announcement, and why — read-only.
import { existsSync, readFileSync } from 'node:fs';
import { admitAnnouncement, channelKey } from '../core/admission.js';
import { windowState } from '../core/window.js';
import type { Config } from '../config/schema.js';
import { trustPolicy } from '../config/trust.js';
import { topics } from '../mqtt/topics.js';
import { AgentStore } from '../store/agent-store.js';
import { databasePath } from '../agent/run.js';
import { backendHandles } from '../backends/registry.js';

export interface PlanReport {
  decision: 'accept' | 'ignore' | 'reject';
  reason?: string;
  message: string;
  steps: string[];
  announcement?: { id: string; version: string; channel: string; sequence: number };
  context: { deviceId: string; runningVersion: string; inFlight: string | null };
}

export function plan(config: Config, file: string, opts: { runningVersion?: string; now?: Date } = {}): PlanReport {
  const raw = readFileSync(file);
  const dbPath = databasePath(config);
  const store = existsSync(dbPath) ? new AgentStore(dbPath, { readonly: true }) : null;
  try {
    const runningVersion = opts.runningVersion ?? store?.getMeta('runningVersion');
    if (!runningVersion) throw new Error(`the agent has not run yet (no ${dbPath}); pass --running-version`);
    const rec = store?.current() ?? null;
    const now = opts.now ?? new Date();
    const t = topics(config.topicPrefix);
    // Judge it as if it arrived on its own channel's topic; the payload says which.
    let topicInfo: { compatible: string; channel: string } | null = null;
    try {
      const env = JSON.parse(raw.toString('utf8')) as { payload?: string };
      const p = JSON.parse(Buffer.from(env.payload ?? '', 'base64').toString('utf8')) as { compatible?: string; channel?: string };
      if (p.compatible && p.channel) topicInfo = { compatible: p.compatible, channel: p.channel };
    } catch {
      /* malformed: admission reports exactly why */
    }
    const topic = topicInfo ? t.announce(topicInfo.compatible, topicInfo.channel) : t.announce(config.compatible, config.channels[0] ?? 'stable');
    const d = admitAnnouncement(raw, topic, {
      deviceId: config.deviceId,
      compatible: config.compatible,
      groups: config.groups,
      channels: config.channels,
      backend: backendHandles(config.backend.type),
      runningVersion,
      trust: trustPolicy(config),
      maxMessageBytes: config.limits.maxMessageBytes,
      clockSkewSeconds: config.limits.clockSkewSeconds,
      artifactPolicy: config.artifacts,
      now,
      inFlight: rec ? { updateId: rec.updateId, version: rec.toVersion, state: rec.state } : null,
      lastSequence: (ch) => store?.lastSequence(ch),
      lastDigest: () => undefined, // plan judges the message itself, not whether it was seen
      previouslyReverted: (id) => store?.wasReverted(id) ?? false,
      topic: topicInfo,
    });
    const a = d.kind === 'accept' ? d.announcement : d.announcement;
    const steps: string[] = [];
    if (d.kind === 'accept') {
      const w = d.announcement.rollout.window;
      if (w) {
        const s = windowState(w, now);
        steps.push(`maintenance window (${w.cron}, ${w.durationMinutes} min, ${w.timezone}) applies to ${w.applies}: ${s.open ? `open until ${s.until?.toISOString()}` : `closed; opens ${s.until?.toISOString() ?? 'never within a year'}`}`);
      }
      const art = d.announcement.backend === 'rauc' ? `${d.announcement.artifact.url} (${d.announcement.artifact.size} bytes, sha256 ${d.announcement.artifact.sha256.slice(0, 12)}…)` : `${d.announcement.artifact.ref}@${d.announcement.artifact.commit.slice(0, 12)}`;
      steps.push(`download ${art}`, `install ${d.announcement.version} into the inactive slot`, 'reboot', 'run health checks; commit if they pass, revert otherwise');
    }
    const report: PlanReport = {
      decision: d.kind,
      message: d.message,
      steps,
      context: { deviceId: config.deviceId, runningVersion, inFlight: rec ? `${rec.updateId} (${rec.state})` : null },
    };
    if (d.kind === 'reject') report.reason = d.reason;
    if (d.kind === 'ignore') report.reason = d.why;
    if (a) report.announcement = { id: a.id, version: a.version, channel: a.channel, sequence: a.sequence };
    if (a && store && d.kind !== 'reject') {
      const last = store.lastSequence(channelKey(a.compatible, a.channel));
      if (last !== undefined) report.steps.unshift(`sequence ${a.sequence} > last seen ${last}`);
    }
    return report;
  } finally {
    store?.close();
  }
}
