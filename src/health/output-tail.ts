// Keeps only the end of a stream: the last lines before a failure are the useful ones, and a
// chatty check must not grow the agent's memory or the reports sent to the fleet.

export const OUTPUT_TAIL_BYTES = 2048;

export class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly limit: number = OUTPUT_TAIL_BYTES) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    // Compacting only at twice the limit keeps appends cheap for output that arrives in tiny chunks.
    if (this.size > 2 * this.limit) this.compact();
  }

  text(): string {
    this.compact();
    return tailText(Buffer.concat(this.chunks), this.limit);
  }

  private compact(): void {
    if (this.size <= this.limit) return;
    const all = Buffer.concat(this.chunks);
    const kept = all.subarray(all.length - this.limit);
    this.chunks = [kept];
    this.size = kept.length;
  }
}

/** Decodes the last `limit` bytes of `bytes` as UTF-8. */
export function tailText(bytes: Buffer, limit: number = OUTPUT_TAIL_BYTES): string {
  const text = bytes.subarray(Math.max(0, bytes.length - limit)).toString('utf8');
  // Cutting at a byte offset can split a multi-byte character; drop the resulting replacement chars.
  return bytes.length > limit ? text.replace(/^\uFFFD+/, '') : text;
}
