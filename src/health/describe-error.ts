// Turns socket and spawn errors into one readable line for reports.

export function describeError(err: unknown): string {
  // Node's happy-eyeballs connect (autoSelectFamily) fails with an AggregateError whose own message
  // is empty; the per-address errors carry the useful text.
  if (err instanceof AggregateError && err.errors.length > 0) {
    return err.errors.map(describeError).join('; ');
  }
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return err.message || code || err.name;
  }
  return String(err);
}
