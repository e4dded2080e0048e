// Offline / USB installs (`ota-agent install FILE`): the same lifecycle as an announced update —
// checks, commit, revert — with the backend's own signature check (RAUC's CMS keyring) as the
// trust anchor instead of a fleet signature. Refusals are events like any other, so the fleet hears
// about them when the broker is reachable.
import { stat } from 'node:fs/promises';
import { sha256File } from '../fetch/files.js';
import { pathToFileURL } from 'node:url';
import type { UpdateBackend } from '../core/backend.js';
import type { RejectReason } from '../core/reasons.js';
import { compareVersions } from '../core/version.js';
import type { ControlReply, ControlRequest } from '../control/protocol.js';
import type { Announcement } from '../schemas/announcement.js';

export interface LocalInstallPlan {
  announcement: Announcement;
}

export type LocalInstallCheck = { ok: true; plan: LocalInstallPlan } | { ok: false; reason: RejectReason; message: string };

export async function checkLocalInstall(
  req: Extract<ControlRequest, { cmd: 'install' }>,
  ctx: { backend: UpdateBackend; compatible: string; runningVersion: string; inFlight: string | null; now: Date },
): Promise<LocalInstallCheck> {
  if (ctx.inFlight) return { ok: false, reason: 'UPDATE_IN_PROGRESS', message: `update ${ctx.inFlight} is in flight; try again when it has ended` };
  const st = await stat(req.path).catch((e: Error) => e);
  if (st instanceof Error) return { ok: false, reason: 'ARTIFACT_INVALID', message: `cannot read ${req.path}: ${st.message}` };
  if (!st.isFile()) return { ok: false, reason: 'ARTIFACT_INVALID', message: `${req.path} is not a regular file` };
  const d = { sha256: await sha256File(req.path), size: st.size };
  if (req.sha256 && req.sha256 !== d.sha256) return { ok: false, reason: 'ARTIFACT_INVALID', message: `sha256 mismatch: expected ${req.sha256} got ${d.sha256}` };
  let info: { compatible: string; version: string };
  try {
    info = await ctx.backend.inspectArtifact(req.path);
  } catch (e) {
    return { ok: false, reason: 'ARTIFACT_INVALID', message: `${req.path} is not a valid ${ctx.backend.name} update: ${(e as Error).message.split('\n')[0]}` };
  }
  if (info.compatible !== ctx.compatible) return { ok: false, reason: 'INCOMPATIBLE', message: `artifact is for "${info.compatible}", this device is "${ctx.compatible}"` };
  const cmp = compareVersions(info.version, ctx.runningVersion);
  if (cmp <= 0 && !req.allowDowngrade) {
    return { ok: false, reason: 'NOT_NEWER', message: `version ${info.version} is not newer than running ${ctx.runningVersion} (use --allow-downgrade)` };
  }
  const now = ctx.now;
  const announcement: Announcement = {
    id: `local-${now.getTime()}`,
    sequence: 0,
    issuedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + 24 * 3600_000).toISOString(),
    compatible: info.compatible,
    channel: 'local',
    version: info.version,
    allowDowngrade: req.allowDowngrade,
    backend: ctx.backend.handles,
    artifact: { url: pathToFileURL(req.path).href, sha256: d.sha256, size: d.size },
    rollout: { percent: 100 },
  } as Announcement;
  return { ok: true, plan: { announcement } };
}

export function replyOf(check: LocalInstallCheck): ControlReply {
  return check.ok
    ? { ok: true, message: `installing ${check.plan.announcement.version} as ${check.plan.announcement.id}`, updateId: check.plan.announcement.id }
    : { ok: false, reason: check.reason, message: check.message };
}
