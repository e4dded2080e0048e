// A loopback TCP proxy between one simulated device and the broker, for fault injection on the
// wire: drop the connection (the device's MQTT client reconnects through the proxy), deliver the
// announcement PUBLISH twice (a QoS 1 redelivery with the DUP flag, what a broker does when an
// acknowledgement is lost), or deliver an older, validly signed announcement right after the newer
// one (out-of-order delivery). Only devices with a wire fault get a proxy; the rest connect
// directly. The MQTT stream is only split into packets (fixed header + remaining length), never
// rewritten, except for the injected packets.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** Splits an MQTT byte stream into whole control packets. */
export class PacketSplitter {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    for (;;) {
      const len = readRemainingLength(this.buf, 1);
      if (!len) break;
      const total = 1 + len.bytes + len.value;
      if (this.buf.length < total) break;
      out.push(this.buf.subarray(0, total));
      this.buf = this.buf.subarray(total);
    }
    return out;
  }
}

/** The variable-length "remaining length" at `offset`; null while incomplete. */
export function readRemainingLength(buf: Buffer, offset: number): { value: number; bytes: number } | null {
  let value = 0;
  let mult = 1;
  for (let i = 0; i < 4; i++) {
    const b = buf[offset + i];
    if (b === undefined) return null;
    value += (b & 0x7f) * mult;
    if ((b & 0x80) === 0) return { value, bytes: i + 1 };
    mult *= 128;
  }
  throw new Error('malformed MQTT remaining length');
}

function encodeRemainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

/** Topic of a PUBLISH packet, or null for any other packet. */
export function publishTopic(packet: Buffer): string | null {
  const first = packet[0];
  if (first === undefined || first >> 4 !== 3) return null;
  const len = readRemainingLength(packet, 1);
  if (!len) return null;
  const at = 1 + len.bytes;
  if (packet.length < at + 2) return null;
  const n = packet.readUInt16BE(at);
  return packet.toString('utf8', at + 2, at + 2 + n);
}

/** A QoS 0 PUBLISH (MQTT 5 adds an empty property block). */
export function encodePublish(topic: string, payload: Buffer, protocolVersion: 4 | 5, retain = false): Buffer {
  const t = Buffer.from(topic, 'utf8');
  const tlen = Buffer.alloc(2);
  tlen.writeUInt16BE(t.length);
  const body = Buffer.concat([tlen, t, ...(protocolVersion === 5 ? [Buffer.from([0])] : []), payload]);
  return Buffer.concat([Buffer.from([0x30 | (retain ? 1 : 0)]), encodeRemainingLength(body.length), body]);
}

/** The same packet again, marked as a redelivery (DUP) when it has a packet id (QoS > 0). */
export function asRedelivery(packet: Buffer): Buffer {
  const copy = Buffer.from(packet);
  const qos = ((copy[0] ?? 0) >> 1) & 3;
  if (qos > 0) copy[0] = (copy[0] ?? 0) | 0x08;
  return copy;
}

export interface FaultProxyOptions {
  broker: { host: string; port: number };
  /** The announcement topic whose first delivery is duplicated / followed by `stale`. */
  announceTopic: string;
  protocolVersion: 4 | 5;
  duplicate?: boolean;
  /** An older signed envelope delivered right after the first announcement. */
  stale?: Buffer | null;
}

export class FaultProxy {
  readonly stats = { connections: 0, drops: 0, duplicated: 0, staleInjected: 0 };
  private readonly live = new Set<Socket>();
  private dupDone = false;
  private staleDone = false;

  private constructor(
    private readonly server: Server,
    private readonly opts: FaultProxyOptions,
  ) {}

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const server = createServer();
    const p = new FaultProxy(server, opts);
    server.on('connection', (s) => p.accept(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return p;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private accept(device: Socket): void {
    this.stats.connections++;
    const broker = connect(this.opts.broker.port, this.opts.broker.host);
    this.live.add(device);
    this.live.add(broker);
    const split = new PacketSplitter();
    const end = () => {
      device.destroy();
      broker.destroy();
      this.live.delete(device);
      this.live.delete(broker);
    };
    device.on('data', (d: Buffer) => broker.write(d));
    broker.on('data', (d: Buffer) => {
      let packets: Buffer[];
      try {
        packets = split.push(d);
      } catch {
        end();
        return;
      }
      for (const pkt of packets) {
        device.write(pkt);
        if (publishTopic(pkt) !== this.opts.announceTopic) continue;
        if (this.opts.duplicate && !this.dupDone) {
          this.dupDone = true;
          this.stats.duplicated++;
          device.write(asRedelivery(pkt));
        }
        if (this.opts.stale && !this.staleDone) {
          this.staleDone = true;
          this.stats.staleInjected++;
          device.write(encodePublish(this.opts.announceTopic, this.opts.stale, this.opts.protocolVersion));
        }
      }
    });
    device.on('error', end);
    broker.on('error', end);
    device.on('close', end);
    broker.on('close', end);
  }

  /** Cuts every connection through the proxy, as a network failure would. */
  drop(): void {
    if (this.live.size === 0) return;
    this.stats.drops++;
    for (const s of this.live) s.destroy();
    this.live.clear();
  }

  async close(): Promise<void> {
    for (const s of this.live) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
