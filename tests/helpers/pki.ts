// A throwaway X.509 PKI for the TLS tests, made with the real `openssl` CLI (argument vectors, never a
// shell): a test CA, a broker certificate for 127.0.0.1/localhost, client certificates whose CN is
// the MQTT identity (a device id, or the fleet identity), and a second, unrelated CA that nothing
// trusts. Keys are EC P-256 (fast to generate, supported by Node and mosquitto alike).
//
// Everything is written world-readable in its own temp directory: mosquitto started as root drops
// to its own user and must still read its certificate and key. Never do that outside a test.
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The fleet's MQTT identity (certificate CN). The ':' makes it impossible as a device id. */
export const FLEET_IDENTITY = 'ota:fleet';

export interface CertPair {
  /** The certificate's CN: the MQTT username under use_identity_as_username. */
  cn: string;
  certFile: string;
  keyFile: string;
}

export interface TestCa extends CertPair {
  name: string;
}

async function openssl(args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run('openssl', args, { cwd, timeout: 30_000 });
    return stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new Error('openssl is not installed (the TLS tests need the openssl CLI): run `apt-get install -y openssl`', { cause: e });
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr ?? err.message}`, { cause: e });
  }
}

/** Fails loudly, with an install hint, when the openssl CLI is missing. */
export async function requireOpenssl(): Promise<string> {
  return (await openssl(['version'], tmpdir())).trim();
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export class TestPki {
  private constructor(
    readonly dir: string,
    /** The CA the broker and the clients trust. */
    readonly ca: TestCa,
    /** An unrelated CA: nothing in the tests trusts it. */
    readonly otherCa: TestCa,
    /** The broker's certificate (SAN IP:127.0.0.1, DNS:localhost), issued by `ca`. */
    readonly server: CertPair,
    /** The fleet's client certificate (CN = FLEET_IDENTITY), issued by `ca`. */
    readonly fleet: CertPair,
  ) {}

  static async create(): Promise<TestPki> {
    await requireOpenssl();
    const dir = mkdtempSync(join(tmpdir(), 'ota-pki-'));
    chmodSync(dir, 0o755);
    const ca = await makeCa(dir, 'ca', 'ota-agent test CA');
    const otherCa = await makeCa(dir, 'other-ca', 'unrelated test CA');
    const server = await issue(dir, ca, 'server', 'localhost', 'server');
    const fleet = await issue(dir, ca, 'fleet', FLEET_IDENTITY, 'client');
    return new TestPki(dir, ca, otherCa, server, fleet);
  }

  /** A device's client certificate: CN = device id, issued by `ca`. */
  device(deviceId: string, by: TestCa = this.ca): Promise<CertPair> {
    return issue(this.dir, by, `device-${deviceId}-${by.name}`, deviceId, 'client');
  }

  /** Deletes the keys and certificates. */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A broker certificate for 127.0.0.1/localhost issued by any CA (e.g. `otherCa`: a broker nobody should trust). */
  serverCert(by: TestCa, name = `server-${by.name}`): Promise<CertPair> {
    return issue(this.dir, by, name, 'localhost', 'server');
  }
}

async function makeCa(dir: string, name: string, cn: string): Promise<TestCa> {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  await openssl(
    ['req', '-x509', ...EC_KEY, '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  readable(keyFile, certFile);
  return { name, cn, certFile, keyFile };
}

async function issue(dir: string, ca: TestCa, name: string, cn: string, kind: 'server' | 'client'): Promise<CertPair> {
  const work = join(dir, 'work');
  mkdirSync(work, { recursive: true });
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  const csr = join(work, `${name}.csr`);
  const ext = join(work, `${name}.ext`);
  await openssl(['req', '-new', ...EC_KEY, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${cn}`], dir);
  writeFileSync(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyAgreement',
      kind === 'server' ? 'extendedKeyUsage=serverAuth' : 'extendedKeyUsage=clientAuth',
      ...(kind === 'server' ? ['subjectAltName=IP:127.0.0.1,DNS:localhost'] : []),
      '',
    ].join('\n'),
  );
  await openssl(
    ['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', `0x${randomBytes(12).toString('hex')}`,
      '-days', '2', '-sha256', '-extfile', ext, '-out', certFile],
    dir,
  );
  readable(keyFile, certFile);
  return { cn, certFile, keyFile };
}

function readable(...files: string[]): void {
  for (const f of files) chmodSync(f, 0o644);
}
