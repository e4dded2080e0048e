// DSSE with Ed25519: the PAE encoding byte for byte, key ids, sign/verify, and interop with the
// openssl CLI (the documented way for anyone to produce an envelope the device accepts).
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyIdOf, loadPrivateKey, loadPublicKey, pae, signEnvelope, verifyEnvelope, type DsseEnvelope } from '../../src/crypto/dsse.js';
import { Envelope } from '../../src/schemas/envelope.js';

// RFC 8032, section 7.1, TEST 1.
const RFC_SEED = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const RFC_PUB = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const PKCS8_ED25519_PREFIX = '302e020100300506032b657004220420';
const SPKI_ED25519_PREFIX = '302a300506032b6570032100';
// sha256(SPKI_ED25519_PREFIX || RFC_PUB), computed with `openssl pkey -pubout -outform DER | openssl dgst -sha256`.
const RFC_KEYID = '06e3fd8fda29bb60ab59557de61edb0aecdb231134be30e75b455f8e1b792fa9';
// openssl pkeyutl -sign -rawin over "DSSEv1 29 http://example.com/HelloWorld 11 hello world" with the RFC key.
const RFC_PAE_SIG = '4DHX3Zn4qpBKvEj7maE8O9u9bjXEnPLLnyXVUJ2PXJR8DSLcL3QDpFvfJOj3pB/SPHsl6Jg4boxsMb6KvuYABw==';

const rfcPrivate = createPrivateKey({ key: Buffer.from(PKCS8_ED25519_PREFIX + RFC_SEED, 'hex'), format: 'der', type: 'pkcs8' });
const rfcPublic = createPublicKey(rfcPrivate);

const TYPE = 'application/vnd.ota-agent.announcement+json';

function keyPair(): { priv: KeyObject; pub: KeyObject; keyid: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { priv: privateKey, pub: publicKey, keyid: keyIdOf(publicKey) };
}

function flipByteB64(b64: string, index: number): string {
  const b = Buffer.from(b64, 'base64');
  b[index] = (b[index] ?? 0) ^ 0x01;
  return b.toString('base64');
}

describe('PAE', () => {
  it('matches the DSSE spec example literally', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString('utf8')).toBe(
      'DSSEv1 29 http://example.com/HelloWorld 11 hello world',
    );
  });

  it('counts lengths in bytes, not characters', () => {
    const out = pae('application/x-ü', Buffer.from('héllo ✓', 'utf8'));
    expect(out.equals(Buffer.from('DSSEv1 16 application/x-ü 10 héllo ✓', 'utf8'))).toBe(true);
  });

  it('encodes an empty body and keeps binary bytes as they are', () => {
    expect(pae('t', Buffer.alloc(0)).toString('latin1')).toBe('DSSEv1 1 t 0 ');
    const bin = Buffer.from([0x00, 0xff, 0x0a, 0x20]);
    expect(pae('t', bin).equals(Buffer.concat([Buffer.from('DSSEv1 1 t 4 '), bin]))).toBe(true);
  });
});

describe('keyIdOf', () => {
  it('is the lowercase hex SHA-256 of the DER SubjectPublicKeyInfo (RFC 8032 test key)', () => {
    expect(Buffer.from(rfcPublic.export({ format: 'jwk' }).x ?? '', 'base64url').toString('hex')).toBe(RFC_PUB);
    const spki = Buffer.from(SPKI_ED25519_PREFIX + RFC_PUB, 'hex');
    expect(createHash('sha256').update(spki).digest('hex')).toBe(RFC_KEYID);
    expect(keyIdOf(rfcPublic)).toBe(RFC_KEYID);
  });

  it('is the same from the private key\'s public half and from the PEM public key', () => {
    const k = keyPair();
    const pem = k.pub.export({ type: 'spki', format: 'pem' }).toString();
    expect(keyIdOf(loadPublicKey(pem))).toBe(k.keyid);
    expect(keyIdOf(createPublicKey(k.priv))).toBe(k.keyid);
    expect(k.keyid).toMatch(/^[0-9a-f]{64}$/);
    expect(keyPair().keyid).not.toBe(k.keyid);
  });

  it('load*Key refuse non-Ed25519 keys', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => loadPublicKey(ec.publicKey.export({ type: 'spki', format: 'pem' }).toString())).toThrow(/Ed25519.*ec/);
    expect(() => loadPrivateKey(ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString())).toThrow(/Ed25519.*ec/);
  });
});

describe('signEnvelope / verifyEnvelope', () => {
  const payload = Buffer.from(JSON.stringify({ id: 'ann-1', version: '1.5.0' }));

  it('signs the PAE deterministically (RFC 8032 key, fixed signature)', () => {
    const env = signEnvelope('http://example.com/HelloWorld', Buffer.from('hello world'), [rfcPrivate]);
    expect(env).toEqual({
      payloadType: 'http://example.com/HelloWorld',
      payload: Buffer.from('hello world').toString('base64'),
      signatures: [{ keyid: RFC_KEYID, sig: RFC_PAE_SIG }],
    });
  });

  it('round-trips with one key', () => {
    const k = keyPair();
    const env = signEnvelope(TYPE, payload, [k.priv]);
    expect(Envelope.safeParse(env).success).toBe(true);
    expect(env.payloadType).toBe(TYPE);
    expect(Buffer.from(env.payload, 'base64').equals(payload)).toBe(true);
    expect(env.signatures).toEqual([{ keyid: k.keyid, sig: expect.any(String) }]);
    expect(Buffer.from(env.signatures[0]?.sig ?? '', 'base64')).toHaveLength(64);
    expect(verifyEnvelope(env, payload, new Map([[k.keyid, k.pub]]))).toEqual({ ok: true, keyids: [k.keyid] });
  });

  it('round-trips with two keys and threshold 2', () => {
    const a = keyPair();
    const b = keyPair();
    const env = signEnvelope(TYPE, payload, [a.priv, b.priv]);
    const r = verifyEnvelope(env, payload, new Map([[a.keyid, a.pub], [b.keyid, b.pub]]), 2);
    expect(r.ok).toBe(true);
    if (r.ok) expect([...r.keyids].sort()).toEqual([a.keyid, b.keyid].sort());
    expect(verifyEnvelope(env, payload, new Map([[a.keyid, a.pub]]), 2)).toMatchObject({ ok: false, reason: 'UNKNOWN_KEY' });
  });

  it('fails on a flipped payload byte', () => {
    const k = keyPair();
    const env = signEnvelope(TYPE, payload, [k.priv]);
    const tampered = Buffer.from(payload);
    tampered[5] = (tampered[5] ?? 0) ^ 0x01;
    const r = verifyEnvelope({ ...env, payload: tampered.toString('base64') }, tampered, new Map([[k.keyid, k.pub]]));
    expect(r).toMatchObject({ ok: false, reason: 'BAD_SIGNATURE' });
    if (!r.ok) expect(r.message).toContain(k.keyid.slice(0, 16));
  });

  it.each([0, 31, 32, 63])('fails on a flipped signature byte at %i', (i) => {
    const k = keyPair();
    const env = signEnvelope(TYPE, payload, [k.priv]);
    const sigs = env.signatures.map((s) => ({ ...s, sig: flipByteB64(s.sig, i) }));
    expect(verifyEnvelope({ ...env, signatures: sigs }, payload, new Map([[k.keyid, k.pub]]))).toMatchObject({ ok: false, reason: 'BAD_SIGNATURE' });
  });

  it('fails on a truncated signature', () => {
    const k = keyPair();
    const env = signEnvelope(TYPE, payload, [k.priv]);
    const sigs = env.signatures.map((s) => ({ ...s, sig: Buffer.from(s.sig, 'base64').subarray(0, 63).toString('base64') }));
    expect(verifyEnvelope({ ...env, signatures: sigs }, payload, new Map([[k.keyid, k.pub]]))).toMatchObject({ ok: false, reason: 'BAD_SIGNATURE' });
  });

  it('fails on a different payloadType (the type is signed too)', () => {
    const k = keyPair();
    const env = signEnvelope(TYPE, payload, [k.priv]);
    const r = verifyEnvelope({ ...env, payloadType: 'application/vnd.ota-agent.command+json' }, payload, new Map([[k.keyid, k.pub]]));
    expect(r).toMatchObject({ ok: false, reason: 'BAD_SIGNATURE' });
  });

  it('reports UNKNOWN_KEY when no signature is by a trusted key', () => {
    const k = keyPair();
    const other = keyPair();
    const env = signEnvelope(TYPE, payload, [k.priv]);
    const r = verifyEnvelope(env, payload, new Map([[other.keyid, other.pub]]));
    expect(r).toMatchObject({ ok: false, reason: 'UNKNOWN_KEY' });
    if (!r.ok) expect(r.message).toContain(k.keyid.slice(0, 16));
  });
});

describe('openssl interop', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ota-dsse-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the real openssl CLI (argv, no shell). A missing binary fails the test with a clear message. */
  function openssl(args: string[]): Buffer {
    try {
      return execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
      if (err.code === 'ENOENT') {
        throw new Error('the openssl CLI is not installed or not on PATH; the DSSE interop tests need it (e.g. apt-get install openssl)', { cause: e });
      }
      throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr?.toString() ?? err.message}`, { cause: e });
    }
  }

  it('openssl is available and supports Ed25519', () => {
    expect(openssl(['version']).toString()).toMatch(/^OpenSSL 3\./);
  });

  it('an envelope signed by openssl verifies, and keyIdOf matches openssl\'s digest of the DER SPKI', () => {
    const keyPem = join(dir, 'key.pem');
    const pubDer = join(dir, 'pub.der');
    const paeBin = join(dir, 'pae.bin');
    const sigBin = join(dir, 'sig.bin');

    openssl(['genpkey', '-algorithm', 'ed25519', '-out', keyPem]);
    openssl(['pkey', '-in', keyPem, '-pubout', '-outform', 'DER', '-out', pubDer]);
    const dgst = openssl(['dgst', '-sha256', '-r', pubDer]).toString().trim();
    const opensslKeyId = dgst.split(/\s+/)[0] ?? '';
    expect(opensslKeyId).toMatch(/^[0-9a-f]{64}$/);

    const payload = Buffer.from(JSON.stringify({ id: 'ann-openssl', note: 'signé par openssl' }), 'utf8');
    const paeBytes = Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(TYPE)} ${TYPE} ${payload.length} `, 'utf8'), payload]);
    expect(paeBytes.equals(pae(TYPE, payload))).toBe(true);
    writeFileSync(paeBin, paeBytes);
    openssl(['pkeyutl', '-sign', '-rawin', '-inkey', keyPem, '-in', paeBin, '-out', sigBin]);
    const sig = readFileSync(sigBin);
    expect(sig).toHaveLength(64);

    const env: DsseEnvelope = {
      payloadType: TYPE,
      payload: payload.toString('base64'),
      signatures: [{ keyid: opensslKeyId, sig: sig.toString('base64') }],
    };
    expect(Envelope.safeParse(env).success).toBe(true);

    const pub = loadPublicKey(openssl(['pkey', '-in', keyPem, '-pubout']).toString());
    expect(keyIdOf(pub)).toBe(opensslKeyId);
    expect(keyIdOf(createPublicKey({ key: readFileSync(pubDer), format: 'der', type: 'spki' }))).toBe(opensslKeyId);
    expect(verifyEnvelope(env, payload, new Map([[keyIdOf(pub), pub]]))).toEqual({ ok: true, keyids: [opensslKeyId] });

    // and the openssl-made key signs through our code exactly as openssl does (Ed25519 is deterministic)
    const ours = signEnvelope(TYPE, payload, [loadPrivateKey(readFileSync(keyPem, 'utf8'))]);
    expect(ours).toEqual(env);
  });

  it('openssl verifies a signature made by signEnvelope, and rejects a tampered PAE', () => {
    const k = keyPair();
    const pubPem = join(dir, 'ours-pub.pem');
    const paeBin = join(dir, 'ours-pae.bin');
    const badBin = join(dir, 'ours-bad.bin');
    const sigBin = join(dir, 'ours-sig.bin');
    const payload = Buffer.from('{"id":"ann-ours"}');
    const env = signEnvelope(TYPE, payload, [k.priv]);
    writeFileSync(pubPem, k.pub.export({ type: 'spki', format: 'pem' }));
    writeFileSync(paeBin, Buffer.from(`DSSEv1 ${Buffer.byteLength(TYPE)} ${TYPE} ${payload.length} {"id":"ann-ours"}`));
    writeFileSync(badBin, Buffer.from(`DSSEv1 ${Buffer.byteLength(TYPE)} ${TYPE} ${payload.length} {"id":"ann-ourz"}`));
    writeFileSync(sigBin, Buffer.from(env.signatures[0]?.sig ?? '', 'base64'));

    const out = openssl(['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', pubPem, '-in', paeBin, '-sigfile', sigBin]).toString();
    expect(out).toMatch(/Signature Verified Successfully/);
    expect(() => openssl(['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', pubPem, '-in', badBin, '-sigfile', sigBin])).toThrow(/failed/);
  });
});
