import { DownloadError, formatBytes } from './errors.js';

/** The two `fs.statfs` fields that matter; bigint variants come from `statfs(path, { bigint: true })`. */
export interface FsSpaceStats {
  bavail: number | bigint;
  bsize: number | bigint;
}

/**
 * Bytes an unprivileged writer may still use. `bavail` rather than `bfree`: the root-reserved
 * blocks are what keeps the device able to log and recover if we misjudge.
 */
export function availableBytes(stats: FsSpaceStats): number {
  return Number(stats.bavail) * Number(stats.bsize);
}

/** Throws DOWNLOAD_NO_SPACE when `neededBytes` will not fit into `dir`'s filesystem. */
export function assertFreeSpace(stats: FsSpaceStats, neededBytes: number, dir: string): void {
  const available = availableBytes(stats);
  if (available >= neededBytes) return;
  throw new DownloadError(
    'DOWNLOAD_NO_SPACE',
    `not enough free space in ${dir}: need ${formatBytes(neededBytes)} (${neededBytes} bytes), ` +
      `only ${formatBytes(available)} (${available} bytes) available`,
  );
}
