// An in-process MQTT 3.1.1 broker (aedes) on a random loopback port, so the demo runs on any
// machine with Node. The tests use a real mosquitto instead.
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

export async function startEmbeddedBroker(): Promise<{ url: string; close: () => Promise<void> }> {
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle as unknown as (socket: import('node:net').Socket) => void);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        broker.close(() => server.close(() => r()));
      }),
  };
}
