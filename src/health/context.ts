// What some check kinds need from the agent beyond their own spec: the agent's MQTT settings for
// `mqtt-broker`. Passed to every attempt by the runner; checks that need nothing ignore it.
import type { IClientOptions } from 'mqtt';

export interface MqttConnectSettings {
  url: string;
  /** The agent's own connection options (TLS material already read, credentials, protocol version). */
  options: IClientOptions;
}

export interface HealthContext {
  /**
   * The agent's MQTT settings. A function so that reading TLS files happens when a check asks, and a
   * missing certificate fails that check rather than the whole run.
   */
  mqtt?: () => MqttConnectSettings;
}
