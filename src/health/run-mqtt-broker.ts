// One attempt of an `mqtt-broker` check: is the broker reachable again from the new boot, with the
// agent's own URL, TLS material and credentials? Passes on CONNACK, then disconnects at once.
//
// The probe uses its own client id (the agent's plus "-health") and a clean session: connecting
// with the agent's id would take over the agent's live session, and with a clean start it would
// even discard the commands the broker queued for the device.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { HealthContext } from './context.js';
import { startDeadline } from './deadline.js';
import { describeError } from './describe-error.js';
import { failed, type AttemptOutcome } from './outcome.js';
import type { MqttBrokerCheckSpec } from './schema.js';

export const PROBE_CLIENT_SUFFIX = '-health';

export function runMqttBrokerAttempt(spec: MqttBrokerCheckSpec, context: HealthContext, signal?: AbortSignal): Promise<AttemptOutcome> {
  return new Promise<AttemptOutcome>((resolve) => {
    const deadline = startDeadline(spec.timeoutMs, signal);
    let client: MqttClient | null = null;
    let settled = false;
    let lastError: string | undefined;
    const settle = (outcome: AttemptOutcome): void => {
      if (settled) return;
      settled = true;
      deadline.dispose();
      deadline.signal.removeEventListener('abort', onDeadline);
      // force: no DISCONNECT handshake to wait for on a broken connection; a connected one gets
      // its DISCONNECT packet written before the socket closes either way.
      client?.end(!outcome.passed);
      resolve(outcome);
    };
    const onDeadline = (): void => settle(failed(lastError ? `${deadline.reason()} (${lastError})` : `${deadline.reason()} waiting for CONNACK`));

    if (deadline.signal.aborted) {
      settle(failed(deadline.reason()));
      return;
    }
    if (!context.mqtt) {
      settle(failed('no MQTT settings given to the health check runner'));
      return;
    }
    let url: string;
    let options: IClientOptions;
    try {
      ({ url, options } = context.mqtt());
    } catch (e) {
      settle(failed(`MQTT settings unusable: ${describeError(e)}`));
      return;
    }
    deadline.signal.addEventListener('abort', onDeadline, { once: true });

    const probe = probeOptions(options, spec.timeoutMs);
    try {
      client = mqtt.connect(url, probe);
    } catch (e) {
      settle(failed(describeError(e)));
      return;
    }
    client.on('connect', () => settle({ passed: true, outputTail: `CONNACK from ${redact(url)} (client id ${probe.clientId ?? '?'})` }));
    client.on('error', (e) => {
      lastError = describeError(e);
      // A refusal in the CONNACK (bad credentials, not authorized) is final for this attempt.
      if ('code' in e && typeof e.code === 'number') settle(failed(`broker refused the connection: ${lastError}`));
    });
    client.on('close', () => settle(failed(lastError ?? 'connection closed before CONNACK')));
  });
}

function probeOptions(options: IClientOptions, timeoutMs: number): IClientOptions {
  const { will: _will, properties, ...rest } = options;
  const probe: IClientOptions = {
    ...rest,
    clientId: `${options.clientId ?? 'ota-agent'}${PROBE_CLIENT_SUFFIX}`,
    clean: true,
    reconnectPeriod: 0,
    // Our own deadline decides; mqtt.js's timer must not fire first with a vaguer message.
    connectTimeout: timeoutMs + 1000,
  };
  // Keep MQTT 5 properties except the session expiry: the probe's session should end with it.
  if (properties) {
    const { sessionExpiryInterval: _expiry, ...props } = properties;
    if (Object.keys(props).length > 0) probe.properties = props;
  }
  return probe;
}

/** The URL without any user:password part, for reports. */
function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}
