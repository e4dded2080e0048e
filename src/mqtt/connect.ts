// Builds the device's MQTT client. mqtt.connect() loads every transport it knows on its first
// call: WebSocket (the ws package, with http, https and zlib), and TCP and TLS through its SOCKS
// module (socks, ip-address, smart-buffer). A device talks mqtt:// or mqtts:// in almost every
// fleet, so for those two the client is built on a plain net/tls socket here and none of that is
// loaded (idle memory, docs/performance.md). ws://, wss:// and a SOCKS proxy still go through
// mqtt.connect().
import { createRequire } from 'node:module';
import { connect as netConnect, isIP } from 'node:net';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

type Builder = (client: MqttClient, opts: IClientOptions) => Duplex;

const buildTcp: Builder = (_client, opts) => netConnect({ port: opts.port ?? 1883, host: opts.hostname ?? opts.host ?? 'localhost' });

/** mqtt.js's TLS builder without SOCKS: an unauthorized certificate is an error, not a connection. */
const buildTls: Builder = (client, opts) => {
  const host = opts.hostname ?? opts.host ?? 'localhost';
  const rejectUnauthorized = opts.rejectUnauthorized !== false;
  const { path: _path, ...rest } = opts as IClientOptions & { path?: string };
  // node:tls is loaded on the first TLS connection only: a device on plain mqtt:// never needs it.
  const tls = createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
  const socket: TLSSocket = tls.connect({
    ...(rest as ConnectionOptions),
    host,
    port: opts.port ?? 8883,
    // SNI for a name, never for an address (RFC 6066).
    ...(isIP(host) === 0 && !opts.servername ? { servername: host } : {}),
    rejectUnauthorized,
  });
  const onError = (err: Error) => {
    if (rejectUnauthorized) client.emit('error', err);
    socket.end();
  };
  socket.on('secureConnect', () => {
    if (rejectUnauthorized && !socket.authorized) socket.emit('error', new Error('TLS not authorized'));
    else socket.removeListener('error', onError);
  });
  socket.on('error', onError);
  return socket;
};

/** Same as mqtt.connect(url, options) for mqtt://, tcp://, mqtts:// and ssl:// URLs. */
export function connectMqtt(url: string, options: IClientOptions): MqttClient {
  const u = new URL(url);
  let protocol = u.protocol.replace(/:$/, '');
  if (protocol === 'ws' || protocol === 'wss' || options.socksProxy !== undefined || process.env.MQTTJS_SOCKS_PROXY) return mqtt.connect(url, options);
  if (protocol !== 'mqtt' && protocol !== 'tcp' && protocol !== 'mqtts' && protocol !== 'ssl') throw new Error(`mqtt: unsupported URL scheme "${protocol}:"`);
  // As mqtt.connect(): a client certificate and key turn a plain URL into TLS.
  if (options.cert && options.key && (protocol === 'mqtt' || protocol === 'tcp')) protocol = 'mqtts';
  const secure = protocol === 'mqtts' || protocol === 'ssl';
  const opts: IClientOptions = {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    ...(u.port ? { port: Number(u.port) } : {}),
    // Credentials in the URL, as mqtt.connect() reads them; explicit options win.
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...options,
    protocol: secure ? 'mqtts' : 'mqtt',
  };
  if (opts.clean === false && !opts.clientId) throw new Error('Missing clientId for unclean clients');
  opts.defaultProtocol = opts.protocol;
  const build = secure ? buildTls : buildTcp;
  // The builder is called on every (re)connect, with the same options each time (as mqtt.connect()
  // does); these builders only read them.
  const client = new mqtt.MqttClient((c) => build(c, opts), opts);
  // As mqtt.connect(): errors reach the caller's own 'error' listener; this one keeps an error
  // emitted before that listener is attached from crashing the process.
  client.on('error', () => undefined);
  return client;
}
