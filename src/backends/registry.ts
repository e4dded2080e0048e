// Which backends exist and how each is built from its own validated options. Adding a backend
// (RAUC, OSTree, ...) is one entry here plus its folder; the core does not change.
import { join } from 'node:path';
import type { UpdateBackend } from '../core/backend.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../config/load.js';
import { describeZodError } from '../core/signed-message.js';
import { silentLogger, type Logger } from '../util/log.js';

/** `inspectOnly`: for read-only tools (status); opening must not change the device. */
type Factory = (config: Config, log: Logger, inspectOnly: boolean) => Promise<UpdateBackend>;

/** Which kind of announcement each backend carries out (read-only tools need it without opening one). */
const HANDLES: Record<string, UpdateBackend['handles']> = {
  simulated: 'rauc',
  rauc: 'rauc',
  ostree: 'ostree',
};

export function backendHandles(type: string): UpdateBackend['handles'] {
  const h = HANDLES[type];
  if (!h) throw new ConfigError(`backend.type "${type}" is unknown (known: ${Object.keys(HANDLES).join(', ')})`);
  return h;
}

const FACTORIES: Record<string, Factory> = {
  simulated: async (config, _log, inspectOnly) => {
    const { SimulatedBackend, SimulatedOptions } = await import('../simulated/backend.js');
    const r = SimulatedOptions.safeParse(config.backend);
    if (!r.success) throw new ConfigError(`backend: ${describeZodError(r.error)}`);
    return SimulatedBackend.open(r.data, config.compatible, join(config.stateDir, 'downloads'), inspectOnly, config.artifacts.allowedHosts);
  },
  rauc: async (config, log) => {
    const { RaucBackend, RaucOptions } = await import('../rauc/backend.js');
    const r = RaucOptions.safeParse(config.backend);
    if (!r.success) throw new ConfigError(`backend: ${describeZodError(r.error)}`);
    return new RaucBackend(r.data, join(config.stateDir, 'downloads'), log, config.artifacts.allowedHosts);
  },
  ostree: async (config, log) => {
    const [{ openOstreeBackend }, { OstreeOptions }] = await Promise.all([import('../ostree/select.js'), import('../ostree/options.js')]);
    const r = OstreeOptions.safeParse(config.backend);
    if (!r.success) throw new ConfigError(`backend: ${describeZodError(r.error)}`);
    // The ostree tool or rpm-ostree over D-Bus, by config or by what is on the bus.
    return openOstreeBackend(r.data, log);
  },
};

export const BACKEND_TYPES = Object.keys(FACTORIES);

export async function createBackend(config: Config, log: Logger = silentLogger(), opts: { inspectOnly?: boolean } = {}): Promise<UpdateBackend> {
  const factory = FACTORIES[config.backend.type];
  if (!factory) throw new ConfigError(`backend.type "${config.backend.type}" is unknown (known: ${BACKEND_TYPES.join(', ')})`);
  return factory(config, log, opts.inspectOnly ?? false);
}
