// The OSTree backend's options, shared by both drivers (the ostree tool, rpm-ostree over D-Bus).
// Validated by the backend itself (src/backends/registry.ts), not by the core config schema.
import * as z from 'zod';
import { Version } from '../schemas/common.js';

export const OstreeOptions = z
  .object({
    type: z.literal('ostree'),
    sysroot: z.string().regex(/^\//, 'an absolute path').default('/').describe('the OSTree sysroot; "/" on a booted OSTree system'),
    osname: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_", "-"')
      .describe('the stateroot (`ostree admin os-init` name) the updates are deployed to'),
    gpgKeyFile: z
      .string()
      .regex(/^\//, 'an absolute path')
      .optional()
      .describe('ASCII-armoured public key(s) imported into the remote; commits must be signed by one of them'),
    allowUnsigned: z.boolean().default(false).describe('pull without GPG verification (the commit checksum from the signed announcement still pins the content); only when gpgKeyFile is not set'),
    bootIdFile: z.string().regex(/^\//).default('/proc/sys/kernel/random/boot_id').describe('changes on every boot; how the agent knows a reboot happened'),
    commandPrefix: z
      .array(z.string().min(1))
      .max(32)
      .default([])
      .describe('argv prefix for every ostree/python3 call (chroot, nsenter, a namespace wrapper); default none'),
    ostreeBinary: z.string().min(1).default('ostree'),
    python: z.string().min(1).default('/usr/bin/python3').describe('a python3 with python3-gi and gir1.2-ostree-1.0 (only used to make another deployment the default)'),
    driver: z
      .enum(['auto', 'ostree', 'rpm-ostree'])
      .default('auto')
      .describe('auto: rpm-ostree when org.projectatomic.rpmostree1 is on the bus (or activatable), else the ostree tool; or force one'),
    busAddress: z
      .string()
      .min(1)
      .optional()
      .describe('the system bus on which rpm-ostree is looked for and driven, e.g. unix:path=/run/dbus/system_bus_socket (default: the system bus)'),
    stage: z.boolean().default(true).describe('`ostree admin deploy --stage` (finalised at shutdown by ostree-finalize-staged.service); false: a plain deploy written at once'),
    commandTimeoutMs: z.number().int().min(1000).max(24 * 3600_000).default(30 * 60_000),
    fallbackVersion: Version.default('0.0.0').describe('version of a deployment whose commit has no `version` metadata'),
    reboot: z
      .object({ method: z.enum(['logind', 'systemd']).default('logind'), busAddress: z.string().min(1).optional() })
      .strict()
      .default({ method: 'logind' }),
  })
  .strict()
  .refine((o) => (o.gpgKeyFile !== undefined) !== o.allowUnsigned, {
    message: 'set gpgKeyFile (commits must be GPG-signed), or explicitly allowUnsigned: true without a gpgKeyFile',
    path: ['gpgKeyFile'],
  });
export type OstreeOptions = z.infer<typeof OstreeOptions>;
