/** What a single attempt of any check kind reports back to the runner. */
export interface AttemptOutcome {
  passed: boolean;
  /** Last ~2 KiB of output, response body or error text. */
  outputTail: string;
  /** Specific reason for a failure; absent when passed. */
  error?: string;
}

export function failed(error: string, outputTail: string = error): AttemptOutcome {
  return { passed: false, outputTail, error };
}
