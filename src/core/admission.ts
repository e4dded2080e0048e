// Decides what to do with an announcement: accept it, ignore it quietly (a duplicate, not our
// rollout, already installed) or refuse it with a reason. Pure: everything it needs is passed in,
// so `ota-agent plan` can ask the very same question without changing anything.
import { Announcement } from '../schemas/announcement.js';
import { ANNOUNCEMENT_TYPE } from '../schemas/envelope.js';
import type { RejectReason } from './reasons.js';
import { inRollout, type RolloutDecision } from './rollout.js';
import { checkValidity, openSigned, type TrustPolicy } from './signed-message.js';
import { compareVersions } from './version.js';
import { validateWindow } from './window.js';

export interface ArtifactPolicy {
  allowedSchemes: readonly string[];
  /** Largest artifact the device accepts, in bytes. */
  maxBytes?: number | undefined;
  /** When set, artifact/remote hosts must be one of these. */
  allowedHosts?: readonly string[] | undefined;
}

export interface ChannelMark {
  sequence: number;
}

export interface AdmissionContext {
  deviceId: string;
  compatible: string;
  groups: readonly string[];
  backend: 'rauc' | 'ostree';
  runningVersion: string;
  trust: TrustPolicy;
  maxMessageBytes: number;
  clockSkewSeconds: number;
  artifactPolicy: ArtifactPolicy;
  now: Date;
  inFlight: { updateId: string; version: string; state: string } | null;
  /** Highest sequence accepted on compatible/channel, if any. */
  lastSequence: (channelKey: string) => number | undefined;
  /** Digest of the last envelope decided on this topic: a retained re-delivery is not news. */
  lastDigest: (topic: string) => string | undefined;
  /** Did this device already try this update id and revert it? A promotion must not retry it. */
  previouslyReverted?: (updateId: string) => boolean;
  /** Channels this device follows; an announcement for another one is refused even if delivered. */
  channels?: readonly string[];
  /** Where the announcement arrived; its signed compatible/channel must match. */
  topic: { compatible: string; channel: string } | null;
}

export type IgnoreWhy = 'DUPLICATE' | 'NOT_IN_ROLLOUT' | 'ALREADY_INSTALLED' | 'ALREADY_IN_FLIGHT' | 'PREVIOUSLY_REVERTED';

export type AnnouncementDecision =
  | { kind: 'accept'; announcement: Announcement; digest: string; rollout: RolloutDecision; message: string }
  | { kind: 'ignore'; why: IgnoreWhy; message: string; digest: string; announcement?: Announcement; advanceSequence: boolean }
  | { kind: 'reject'; reason: RejectReason; message: string; digest: string; announcement?: Announcement };

export function channelKey(compatible: string, channel: string): string {
  return `${compatible}/${channel}`;
}

function checkUrl(url: string, policy: ArtifactPolicy): string | null {
  const u = new URL(url);
  const scheme = u.protocol.replace(/:$/, '');
  if (!policy.allowedSchemes.includes(scheme)) return `scheme "${scheme}" not allowed (allowed: ${policy.allowedSchemes.join(', ')})`;
  if (policy.allowedHosts && !policy.allowedHosts.includes(u.hostname)) return `host "${u.hostname}" not in the allow-list`;
  if (u.username || u.password) return 'credentials in the URL are not allowed';
  return null;
}

export function admitAnnouncement(raw: Uint8Array, topicKey: string, ctx: AdmissionContext): AnnouncementDecision {
  const opened = openSigned(raw, ANNOUNCEMENT_TYPE, Announcement, ctx.trust, ctx.maxMessageBytes);
  if (opened.kind === 'reject') {
    if (ctx.lastDigest(topicKey) === opened.digest) {
      return { kind: 'ignore', why: 'DUPLICATE', message: 'same message as already decided', digest: opened.digest, advanceSequence: false };
    }
    return opened;
  }
  const a = opened.payload;
  const digest = opened.digest;
  const required = ctx.trust.channelThresholds?.[a.channel];
  const reject = (reason: RejectReason, message: string): AnnouncementDecision => ({ kind: 'reject', reason, message, digest, announcement: a });
  const ignore = (why: IgnoreWhy, message: string, advanceSequence: boolean): AnnouncementDecision => ({ kind: 'ignore', why, message, digest, announcement: a, advanceSequence });

  if (ctx.lastDigest(topicKey) === digest) return ignore('DUPLICATE', `announcement ${a.id} seq ${a.sequence} already decided`, false);

  if (required !== undefined && opened.keyids.length < required) {
    return reject('INSUFFICIENT_SIGNATURES', `channel "${a.channel}" needs ${required} distinct trusted signatures, got ${opened.keyids.length}`);
  }
  if (a.compatible !== ctx.compatible) return reject('INCOMPATIBLE', `announcement is for "${a.compatible}", this device is "${ctx.compatible}"`);
  if (ctx.channels && !ctx.channels.includes(a.channel)) {
    return reject('WRONG_CHANNEL', `channel "${a.channel}" is not one this device follows (${ctx.channels.join(', ')})`);
  }
  if (ctx.topic && (ctx.topic.compatible !== a.compatible || ctx.topic.channel !== a.channel)) {
    return reject('WRONG_CHANNEL', `signed for ${a.compatible}/${a.channel}, received on ${ctx.topic.compatible}/${ctx.topic.channel}`);
  }
  const validity = checkValidity(a.issuedAt, a.expiresAt, ctx.now, ctx.clockSkewSeconds);
  if (validity) return reject(validity.reason, validity.message);

  const last = ctx.lastSequence(channelKey(a.compatible, a.channel));
  if (last !== undefined && a.sequence <= last) return reject('REPLAYED', `sequence ${a.sequence} not above ${last} already seen on ${a.channel}`);

  if (a.backend !== ctx.backend) return reject('BACKEND_MISMATCH', `announcement needs backend "${a.backend}", this device runs "${ctx.backend}"`);
  const urlProblem = a.backend === 'rauc' ? checkUrl(a.artifact.url, ctx.artifactPolicy) : checkUrl(a.artifact.remote.url, ctx.artifactPolicy);
  if (urlProblem) return reject('ARTIFACT_URL_NOT_ALLOWED', urlProblem);
  const cap = ctx.artifactPolicy.maxBytes;
  if (a.backend === 'rauc' && cap !== undefined && a.artifact.size > cap) {
    return reject('ARTIFACT_TOO_LARGE', `artifact of ${a.artifact.size} bytes is above the device's limit of ${cap}`);
  }
  if (a.rollout.window) {
    const bad = validateWindow(a.rollout.window);
    if (bad) return reject('MALFORMED_PAYLOAD', `rollout.window: ${bad}`);
  }

  if (ctx.inFlight && ctx.inFlight.updateId === a.id) {
    return ignore('ALREADY_IN_FLIGHT', `update ${a.id} is already in flight (${ctx.inFlight.state})`, true);
  }
  const cmp = compareVersions(a.version, ctx.runningVersion);
  if (cmp === 0 && !ctx.inFlight) return ignore('ALREADY_INSTALLED', `already running ${a.version}`, true);
  if (cmp < 0 && !a.allowDowngrade) return reject('NOT_NEWER', `version ${a.version} is older than running ${ctx.runningVersion} and the announcement does not allow a downgrade`);

  const rollout = inRollout(ctx.deviceId, ctx.groups, a.id, a.rollout);
  if (!rollout.included) return ignore('NOT_IN_ROLLOUT', `not in this rollout: ${rollout.why}`, true);
  // A version that failed its checks here would fail again: one bad boot per update id is enough.
  // The fleet publishes a new id to make the device try again.
  if (ctx.previouslyReverted?.(a.id)) return ignore('PREVIOUSLY_REVERTED', `update ${a.id} was already tried on this device and reverted; publish a new id to retry`, true);

  if (ctx.inFlight) {
    return reject('UPDATE_IN_PROGRESS', `update ${ctx.inFlight.updateId} to ${ctx.inFlight.version} is in flight (${ctx.inFlight.state}); this announcement is queued and re-checked when it ends`);
  }
  return { kind: 'accept', announcement: a, digest, rollout, message: `accepted ${a.version} (${rollout.why})` };
}
