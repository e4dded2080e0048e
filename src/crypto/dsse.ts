// DSSE (Dead Simple Signing Envelope, as used by in-toto and Sigstore) with Ed25519 keys.
// Signing exact bytes through PAE avoids any canonical-JSON question: the device verifies the very
// bytes the fleet signed, and anyone with openssl can produce a valid envelope (docs/protocol.md).
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export interface DsseSignature {
  keyid: string;
  sig: string; // base64
}
export interface DsseEnvelope {
  payloadType: string;
  payload: string; // base64
  signatures: DsseSignature[];
}

/** PAE("DSSEv1", type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, LEN in ASCII decimal bytes. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.length} `, 'utf8'),
    payload,
  ]);
}

/** keyid: lowercase hex SHA-256 of the public key's DER SubjectPublicKeyInfo. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

export function loadPublicKey(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`expected an Ed25519 public key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  return key;
}

export function loadPrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`expected an Ed25519 private key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  return key;
}

export function signEnvelope(payloadType: string, payload: Buffer, privateKeys: KeyObject[]): DsseEnvelope {
  const message = pae(payloadType, payload);
  return {
    payloadType,
    payload: payload.toString('base64'),
    signatures: privateKeys.map((k) => ({
      keyid: keyIdOf(createPublicKey(k)),
      sig: sign(null, message, k).toString('base64'),
    })),
  };
}

export type VerifyOutcome =
  | { ok: true; keyids: string[] }
  | { ok: false; reason: 'UNKNOWN_KEY' | 'BAD_SIGNATURE'; message: string };

/**
 * Verifies that at least `threshold` distinct trusted keys signed the envelope. Signatures by unknown
 * keys are ignored (a rotation may add signers the device does not know yet); a signature by a
 * trusted keyid that does not verify is a hard failure, since it means tampering.
 */
export function verifyEnvelope(
  env: DsseEnvelope,
  payloadBytes: Buffer,
  trusted: ReadonlyMap<string, KeyObject>,
  threshold = 1,
): VerifyOutcome {
  const message = pae(env.payloadType, payloadBytes);
  const good = new Set<string>();
  for (const s of env.signatures) {
    const key = trusted.get(s.keyid.toLowerCase());
    if (!key) continue;
    const sig = Buffer.from(s.sig, 'base64');
    if (sig.length !== 64 || !verify(null, message, key, sig)) {
      return { ok: false, reason: 'BAD_SIGNATURE', message: `signature by key ${s.keyid.slice(0, 16)}… does not verify` };
    }
    good.add(s.keyid.toLowerCase());
  }
  if (good.size === 0) {
    const ids = env.signatures.map((s) => s.keyid.slice(0, 16)).join(', ') || 'none';
    return { ok: false, reason: 'UNKNOWN_KEY', message: `no signature by a trusted key (signed by: ${ids})` };
  }
  if (good.size < threshold) {
    return { ok: false, reason: 'UNKNOWN_KEY', message: `${good.size} trusted signature(s), ${threshold} required` };
  }
  return { ok: true, keyids: [...good] };
}
