// Builds the device's MQTT client. mqtt.connect() loads every transport it knows on its first
// call: WebSocket (the ws package, with http, https and zlib) as well as TCP and TLS. A device
// talks mqtt:// or mqtts:// in almost every fleet, so for those two the client is built on the
// TCP or TLS stream builder alone and ws is never loaded (about 2 MiB of idle memory,
// docs/performance.md). ws:// and wss:// still go through mqtt.connect().
import mqtt, { type IClientOptions, type MqttClient, type StreamBuilder } from 'mqtt';
import * as tcpModule from 'mqtt/lib/connect/tcp';
import * as tlsModule from 'mqtt/lib/connect/tls';

/**
 * The module's stream builder. These are CommonJS modules with `exports.default`: Node's ESM loader
 * puts that under `default.default`, a bundler under `default`; both are accepted.
 */
function builderOf(mod: unknown, name: string): StreamBuilder {
  let f: unknown = mod;
  for (let i = 0; i < 3 && typeof f !== 'function' && f !== null && typeof f === 'object' && 'default' in f; i++) f = (f as { default: unknown }).default;
  if (typeof f !== 'function') throw new Error(`mqtt: no stream builder in ${name}`);
  return f as StreamBuilder;
}

/** Same as mqtt.connect(url, options) for mqtt://, tcp://, mqtts:// and ssl:// URLs. */
export function connectMqtt(url: string, options: IClientOptions): MqttClient {
  const u = new URL(url);
  let protocol = u.protocol.replace(/:$/, '');
  if (protocol === 'ws' || protocol === 'wss') return mqtt.connect(url, options);
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
    // As mqtt.connect(): a SOCKS proxy from the environment unless the options name one.
    ...(process.env.MQTTJS_SOCKS_PROXY ? { socksProxy: process.env.MQTTJS_SOCKS_PROXY } : {}),
    ...options,
    protocol: secure ? 'mqtts' : 'mqtt',
  };
  if (opts.clean === false && !opts.clientId) throw new Error('Missing clientId for unclean clients');
  opts.defaultProtocol = opts.protocol;
  const build = secure ? builderOf(tlsModule, 'tls') : builderOf(tcpModule, 'tcp');
  // The builder is called on every (re)connect with the options; like mqtt.connect(), each call
  // gets the same object, which the builders complete (hostname, servername, default port).
  const client = new mqtt.MqttClient((c) => build(c, opts), opts);
  // As mqtt.connect(): errors reach the caller's own 'error' listener; this one keeps an error
  // emitted before that listener is attached from crashing the process.
  client.on('error', () => undefined);
  return client;
}
