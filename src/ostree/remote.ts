// Points the announced remote at the announced URL with GPG verification on and the device's key
// imported — for both drivers: rpm-ostree has no D-Bus call for remotes, it pulls through the
// remote's configuration, so its gpg-verify is what makes rpm-ostree check the signature.
import { readFile } from 'node:fs/promises';
import type { Announcement } from '../schemas/announcement.js';
import type { OstreeCli } from './cli.js';
import type { OstreeOptions } from './options.js';

type OstreeArtifact = Extract<Announcement, { backend: 'ostree' }>['artifact'];

export async function prepareRemote(cli: OstreeCli, opts: Pick<OstreeOptions, 'allowUnsigned' | 'gpgKeyFile'>, art: OstreeArtifact, signal?: AbortSignal): Promise<void> {
  const repo = cli.repoArg();
  const verify = !opts.allowUnsigned;
  const o = signal ? { signal } : {};
  // Refreshed every time: the announcement owns the remote's name and URL.
  await cli.ostree(['remote', 'add', repo, '--force', `--set=gpg-verify=${verify ? 'true' : 'false'}`, art.remote.name, art.remote.url, art.ref], o);
  if (!verify) return;
  const key = await readFile(opts.gpgKeyFile as string, 'utf8').catch((e: unknown) => {
    throw new Error(`cannot read gpgKeyFile ${String(opts.gpgKeyFile)}: ${(e as Error).message}`, { cause: e });
  });
  // Over stdin: the key is read by the agent, so a commandPrefix (chroot) needs no path to it.
  await cli.ostree(['remote', 'gpg-import', repo, '--stdin', art.remote.name], { ...o, input: key });
}

/** An error text that says the signature check failed (libostree's wording, through either driver). */
export function isSignatureFailure(text: string): boolean {
  return /GPG|signature|public key not found/i.test(text);
}
