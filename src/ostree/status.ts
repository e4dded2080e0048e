// Parses the text of `ostree admin status` (ostree 2022.7 has no --json). Each deployment is one
// line, then indented detail lines:
//   "* testos 252aee…8a8d.0 (staged)"   '*' = booted; state in parentheses: staged, pending, rollback
//   "    Version: 1.1.0"
//   "    origin refspec: upd:testos/stable"
// The order is the boot order: the first non-staged deployment is the default.

export interface OstreeDeployment {
  index: number;
  osname: string;
  checksum: string;
  serial: number;
  booted: boolean;
  staged: boolean;
  pending: boolean;
  rollback: boolean;
  version?: string;
  refspec?: string;
  pinned: boolean;
}

const HEAD = /^([* ]) (\S+) ([0-9a-f]{64})\.(\d+)(?: \(([^)]*)\))?\s*$/;

export function parseAdminStatus(text: string): OstreeDeployment[] {
  const out: OstreeDeployment[] = [];
  for (const line of text.split('\n')) {
    const m = HEAD.exec(line);
    if (m) {
      const state = (m[5] ?? '').toLowerCase();
      out.push({
        index: out.length,
        osname: m[2] as string,
        checksum: m[3] as string,
        serial: Number(m[4]),
        booted: m[1] === '*',
        staged: state.includes('staged'),
        pending: state.includes('pending'),
        rollback: state.includes('rollback'),
        pinned: false,
      });
      continue;
    }
    const cur = out[out.length - 1];
    if (!cur || !/^\s{2,}\S/.test(line)) continue;
    const t = line.trim();
    const v = /^Version:\s*(\S.*)$/.exec(t);
    if (v) cur.version = (v[1] as string).trim();
    const r = /^origin refspec:\s*(\S+)/.exec(t);
    if (r) cur.refspec = r[1] as string;
    if (/^Deployment is pinned/i.test(t)) cur.pinned = true;
  }
  return out;
}

/**
 * The booted deployment when a finished update's `commit` is still the default (first) deployment
 * while something else runs, else null. A bootloader fallback leaves it so, and unlike RAUC's
 * bootloaders nothing marks an OSTree deployment bad: left alone, the next reboot would retry it.
 */
export function staleDefault<D extends { booted: boolean; checksum: string }>(all: readonly D[], commit: string): D | null {
  const booted = all.find((d) => d.booted);
  const first = all[0];
  if (!booted || !first || first === booted) return null;
  return first.checksum === commit && booted.checksum !== commit ? booted : null;
}
