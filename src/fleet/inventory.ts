// The fleet inventory for group commands. A device's groups live in its own config and are not part
// of its retained state, so the broker cannot answer "who is in group lab"; the fleet owner keeps
// that list. Format: one device per line, `<device-id> [group ...]` (groups separated by spaces or
// commas), `#` starts a comment. A line with only an id is a device in no group.
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface InventoryEntry {
  id: string;
  groups: string[];
}

export class InventoryError extends Error {}

export function parseInventory(text: string, source = 'inventory'): InventoryEntry[] {
  const out: InventoryEntry[] = [];
  const seen = new Map<string, InventoryEntry>();
  text.split(/\r?\n/).forEach((line, i) => {
    const body = line.replace(/#.*$/, '').trim();
    if (!body) return;
    const [id, ...rest] = body.split(/[\s,]+/).filter(Boolean);
    const where = `${source}:${i + 1}`;
    if (!id || !ID.test(id)) throw new InventoryError(`${where}: "${id}" is not a device id`);
    for (const g of rest) if (!ID.test(g)) throw new InventoryError(`${where}: "${g}" is not a group name`);
    const prev = seen.get(id);
    if (prev) {
      // The same device listed twice: its groups add up.
      for (const g of rest) if (!prev.groups.includes(g)) prev.groups.push(g);
      return;
    }
    const e = { id, groups: [...new Set(rest)] };
    seen.set(id, e);
    out.push(e);
  });
  return out;
}

/** Devices in at least one of `groups`, in inventory order. */
export function devicesInGroups(inventory: InventoryEntry[], groups: string[]): string[] {
  return inventory.filter((e) => e.groups.some((g) => groups.includes(g))).map((e) => e.id);
}
