// Every refusal and failure carries one of these codes, so fleet tooling can count and act on them
// without parsing prose. The message beside a code says the specifics (which key, which version, ...).

/** Why an incoming announcement or command was refused. Nothing changed on the device. */
export const REJECT_REASONS = [
  'TOO_LARGE', // over the size limit, checked before parsing
  'MALFORMED_JSON', // not JSON or not UTF-8
  'MALFORMED_ENVELOPE', // not a DSSE envelope
  'WRONG_PAYLOAD_TYPE', // a DSSE envelope, but not the type this topic carries
  'UNKNOWN_KEY', // no signature by a key this device trusts
  'REVOKED_KEY', // signed only by keys on the revocation list
  'INSUFFICIENT_SIGNATURES', // fewer distinct trusted signatures than the channel requires
  'BAD_SIGNATURE', // a trusted keyid, but the signature does not verify
  'MALFORMED_PAYLOAD', // signed, but the payload does not match the schema
  'EXPIRED', // expiresAt is in the past (beyond the clock-skew allowance)
  'NOT_YET_VALID', // issuedAt is in the future (beyond the clock-skew allowance)
  'WRONG_CHANNEL', // the signed compatible/channel differ from the topic it came on
  'INCOMPATIBLE', // compatible differs from this device's
  'REPLAYED', // sequence not above the last one seen on this channel
  'NOT_NEWER', // version not newer than the running one, and downgrade not allowed
  'BACKEND_MISMATCH', // announcement needs a backend this device does not run
  'ARTIFACT_URL_NOT_ALLOWED', // scheme or host not allowed by config
  'ARTIFACT_TOO_LARGE', // the announced size is above the configured cap
  'UPDATE_IN_PROGRESS', // another update is in flight; queued until it ends (see docs/protocol.md)
  'WRONG_DEVICE', // a command addressed to another device
  'COMMAND_NOT_APPLICABLE', // e.g. cancel with nothing to cancel, rollback with no previous version
  'ARTIFACT_INVALID', // a local (offline) artifact is unreadable, not an update for this backend, or its digest differs
  'RATE_LIMITED', // a summary: unauthenticated messages refused beyond the refusal budget, counted per reason (src/agent/refusal-budget.ts)
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Why an accepted update ended other than committed. */
export const FAILURE_REASONS = [
  'DOWNLOAD_FAILED',
  'INSTALL_FAILED',
  'REBOOT_FAILED',
  'HEALTH_CHECK_FAILED',
  'BOOTLOADER_FALLBACK', // the bootloader booted the old slot: the new one never came up
  'COMMIT_FAILED',
  'REVERT_FAILED',
  'ROLLBACK_REQUESTED',
  'CANCELLED',
  'STATE_LOOP', // the loop guard stopped a cycle (e.g. endless reboots)
  'RESUME_BUDGET_EXHAUSTED', // the agent died in the same state too often
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export type ReasonCode = RejectReason | FailureReason;
