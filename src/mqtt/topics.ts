// Every topic the agent and the fleet tools use, built in one place from the configured prefix.
export interface Topics {
  announce(compatible: string, channel: string): string;
  /** Wildcard for every announcement of one compatible (fleet tools use it). */
  announceAll(compatible: string): string;
  commands(deviceId: string): string;
  state(deviceId: string): string;
  events(deviceId: string): string;
  online(deviceId: string): string;
  /** Parses an announcement topic back into compatible/channel, or null. */
  parseAnnounce(topic: string): { compatible: string; channel: string } | null;
  parseDevice(topic: string): { deviceId: string; kind: string } | null;
}

export function topics(prefix: string): Topics {
  const p = prefix.split('/').length;
  return {
    announce: (c, ch) => `${prefix}/announce/${c}/${ch}`,
    announceAll: (c) => `${prefix}/announce/${c}/+`,
    commands: (d) => `${prefix}/devices/${d}/commands`,
    state: (d) => `${prefix}/devices/${d}/state`,
    events: (d) => `${prefix}/devices/${d}/events`,
    online: (d) => `${prefix}/devices/${d}/online`,
    parseAnnounce(topic) {
      if (!topic.startsWith(`${prefix}/announce/`)) return null;
      const parts = topic.split('/').slice(p + 1);
      if (parts.length !== 2 || !parts[0] || !parts[1]) return null;
      return { compatible: parts[0], channel: parts[1] };
    },
    parseDevice(topic) {
      if (!topic.startsWith(`${prefix}/devices/`)) return null;
      const parts = topic.split('/').slice(p + 1);
      if (parts.length !== 2 || !parts[0] || !parts[1]) return null;
      return { deviceId: parts[0], kind: parts[1] };
    },
  };
}
