// A hostile MQTT 3.1.1 "broker" in a few lines (mqtt-packet, the codec under mqtt.js): it accepts
// anyone, acknowledges everything, and sends the client whatever the test asks for, on any topic,
// subscribed or not. Optionally it echoes every message the client publishes straight back to it.
// Real brokers never do this; a compromised one can.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { generate, parser as makeParser, type Packet } from 'mqtt-packet';

export class RogueBroker {
  readonly subscriptions: string[] = [];
  readonly published: Array<{ topic: string; payload: Buffer }> = [];
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server, readonly echo: boolean) {}

  get url(): string {
    return `mqtt://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  static async start(opts: { echo?: boolean } = {}): Promise<RogueBroker> {
    const server = createServer();
    const b = new RogueBroker(server, opts.echo ?? false);
    server.on('connection', (sock) => b.serve(sock));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return b;
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => undefined);
    const p = makeParser({ protocolVersion: 4 });
    const send = (packet: Packet) => {
      if (!sock.destroyed) sock.write(generate(packet, { protocolVersion: 4 }));
    };
    p.on('packet', (packet: Packet) => {
      switch (packet.cmd) {
        case 'connect':
          send({ cmd: 'connack', returnCode: 0, sessionPresent: false });
          break;
        case 'subscribe':
          this.subscriptions.push(...packet.subscriptions.map((s) => s.topic));
          send({ cmd: 'suback', messageId: packet.messageId ?? 0, granted: packet.subscriptions.map((s) => s.qos) });
          break;
        case 'publish': {
          const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
          this.published.push({ topic: packet.topic, payload });
          if (packet.qos === 1) send({ cmd: 'puback', messageId: packet.messageId ?? 0 });
          if (this.echo) this.deliver(packet.topic, payload);
          break;
        }
        case 'pingreq':
          send({ cmd: 'pingresp' });
          break;
        case 'disconnect':
          sock.end();
          break;
        default:
          break;
      }
    });
    p.on('error', () => sock.destroy());
    sock.on('data', (d: Buffer) => p.parse(d));
  }

  /** Sends a QoS 0 PUBLISH on `topic` to every connected client, subscribed or not. */
  deliver(topic: string, payload: Buffer | string): void {
    const packet = generate({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false }, { protocolVersion: 4 });
    for (const s of this.sockets) if (!s.destroyed) s.write(packet);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
