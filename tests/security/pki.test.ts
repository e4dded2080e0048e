// The test PKI (tests/helpers/pki.ts) is what the TLS tests claim it is: who issued what, for
// which name, for which purpose; and it fails loudly without openssl.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLEET_IDENTITY, requireOpenssl, TestPki } from '../helpers/pki.js';

const cert = (file: string) => new X509Certificate(readFileSync(file));

describe('the test PKI made with the openssl CLI', () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await TestPki.create();
  });
  afterAll(() => pki?.remove());

  it('a CA, and a second CA that did not issue anything the first one did', () => {
    const ca = cert(pki.ca.certFile);
    const other = cert(pki.otherCa.certFile);
    expect(ca.ca).toBe(true);
    expect(other.ca).toBe(true);
    expect(ca.verify(other.publicKey)).toBe(false);
    expect(other.verify(ca.publicKey)).toBe(false);
  });

  it('the broker certificate: issued by the CA, for 127.0.0.1 and localhost, server auth only', () => {
    const c = cert(pki.server.certFile);
    expect(c.verify(cert(pki.ca.certFile).publicKey)).toBe(true);
    expect(c.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(c.subjectAltName).toContain('DNS:localhost');
    expect(c.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(c.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(c.ca).toBe(false);
  });

  it('client certificates: CN = device id or the fleet identity, client auth only', async () => {
    const dev = await pki.device('gw-0042');
    const d = cert(dev.certFile);
    expect(d.subject).toBe('CN=gw-0042');
    expect(d.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(d.verify(cert(pki.ca.certFile).publicKey)).toBe(true);
    expect(cert(pki.fleet.certFile).subject).toBe(`CN=${FLEET_IDENTITY}`);
    const foreign = cert((await pki.device('gw-0042', pki.otherCa)).certFile);
    expect(foreign.verify(cert(pki.ca.certFile).publicKey)).toBe(false);
  });

  it('fails loudly, with an install hint, when openssl is missing', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await expect(requireOpenssl()).rejects.toThrow(/openssl is not installed.*apt-get install -y openssl/);
    } finally {
      process.env.PATH = path;
    }
  });
});
