// Text rendering of a FleetView for `ota-fleet watch` and `simulate`: one line per device and a
// summary. Pure: returns lines, the caller decides how to put them on the terminal.
import { compareIds, type AnnouncementSummary, type DeviceRow, type FleetSummary, type FleetView } from './fleet-view.js';

const ACTIVE_FIRST = (r: DeviceRow) => (r.state && r.state.state !== 'idle' ? 0 : 1);

/** `[#####.....]` for 0..100; blanks when there is no progress to show. */
export function progressBar(percent: number | null | undefined, width = 10): string {
  if (percent === null || percent === undefined || !Number.isFinite(percent)) return ' '.repeat(width + 2);
  const p = Math.max(0, Math.min(100, percent));
  const full = Math.round((p / 100) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

function shortTime(iso: string): string {
  // 2026-11-27T01:00:00.000Z -> 11-27 01:00Z
  const m = /^\d{4}-(\d\d-\d\d)T(\d\d:\d\d)/.exec(iso);
  return m ? `${m[1]} ${m[2]}Z` : iso;
}

export function progressCell(row: DeviceRow): string {
  const u = row.state?.update;
  if (!u) return progressBar(null);
  if (u.deferredUntil) return `until ${shortTime(u.deferredUntil)}`;
  if (u.progress) return `${progressBar(u.progress.percent)} ${String(Math.round(u.progress.percent)).padStart(3)}% ${u.progress.phase}`;
  return progressBar(null);
}

/** The last finished update, or a refusal if that is newer. */
export function lastResultCell(row: DeviceRow): string {
  const lr = row.state?.lastResult ?? null;
  const rj = row.lastRejection;
  if (rj && (!lr || Date.parse(rj.at) > Date.parse(lr.at))) return `rejected ${rj.reason ?? ''}${rj.updateId ? ` (${rj.updateId})` : ''}`.trim();
  if (!lr) return '-';
  return `${lr.result}${lr.reason ? ` ${lr.reason}` : ''} (${lr.updateId})`;
}

function versionCell(row: DeviceRow): string {
  const s = row.state;
  if (!s) return '?';
  // In flight: from -> to (after the reboot the device may already run `to`, unverified).
  return s.update ? `${s.update.fromVersion} -> ${s.update.toVersion}` : s.runningVersion;
}

const HEAD = ['DEVICE', 'ONLINE', 'STATE', 'VERSION', 'PROGRESS', 'LAST RESULT'];

/** One line per device: header first; in-flight devices first, then by id; at most `maxRows` devices. */
export function renderDeviceTable(view: FleetView, opts: { maxRows?: number; width?: number } = {}): string[] {
  const rows = view.rows().sort((a, b) => ACTIVE_FIRST(a) - ACTIVE_FIRST(b) || compareIds(a.id, b.id));
  const shown = opts.maxRows !== undefined && rows.length > opts.maxRows ? rows.slice(0, Math.max(0, opts.maxRows)) : rows;
  const cells = shown.map((r) => [r.id, r.online === null ? '?' : r.online ? 'yes' : 'no', r.state?.state ?? '?', versionCell(r), progressCell(r), lastResultCell(r)]);
  const widths = HEAD.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: string[]) => {
    const text = c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i] ?? 0))).join('  ');
    return opts.width && text.length > opts.width ? `${text.slice(0, Math.max(0, opts.width - 1))}…` : text;
  };
  const out = [line(HEAD), ...cells.map(line)];
  if (shown.length < rows.length) out.push(`… ${rows.length - shown.length} more device(s)`);
  return out;
}

export function renderAnnouncementSummary(a: AnnouncementSummary): string {
  const reasons = Object.entries(a.reasons).map(([k, v]) => `${k} ${v}`).join(', ');
  const head = `${a.id}${a.version ? ` (${a.version}${a.percent !== undefined ? `, ${a.percent}%` : ''})` : ''}`;
  const parts = [
    `committed ${a.committed}`,
    `reverted ${a.reverted}`,
    `failed ${a.failed}`,
    ...(a.cancelled ? [`cancelled ${a.cancelled}`] : []),
    `rejected ${a.rejected}`,
    `pending ${a.pending}${a.deferred ? ` (deferred ${a.deferred})` : ''}`,
    ...(a.waiting ? [`waiting ${a.waiting}`] : []),
    ...(a.notInRollout ? [`not in rollout ${a.notInRollout}`] : []),
    ...(a.upToDate ? [`up to date ${a.upToDate}`] : []),
  ];
  return `${head}: ${parts.join(', ')}${reasons ? ` [${reasons}]` : ''}`;
}

export function renderSummary(s: FleetSummary): string[] {
  const states = Object.entries(s.states).map(([k, v]) => `${k} ${v}`).join(', ');
  const versions = Object.entries(s.versions).map(([k, v]) => `${k} ${v}`).join(', ');
  const lines = [`${s.devices} device(s), ${s.online} online | ${states || 'no state yet'} | versions: ${versions || '-'}`];
  if (s.announcement) lines.push(renderAnnouncementSummary(s.announcement));
  return lines;
}
