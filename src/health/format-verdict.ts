// Human-readable rendering of a verdict for the CLI and journal; machines should use the JSON.
import type { HealthCheckResult, HealthVerdict } from './schema.js';

const HEADERS = ['NAME', 'KIND', 'REQUIREMENT', 'RESULT', 'ATTEMPTS', 'DURATION', 'ERROR'] as const;

export function formatVerdictTable(verdict: HealthVerdict): string {
  const rows = verdict.results.map(toRow);
  const lines = rows.length === 0 ? ['(no health checks configured)'] : renderTable([[...HEADERS], ...rows]);
  lines.push(summary(verdict));
  return lines.join('\n');
}

function toRow(r: HealthCheckResult): string[] {
  return [
    r.name,
    r.kind,
    r.required ? 'required' : 'wanted',
    r.passed ? 'PASS' : 'FAIL',
    String(r.attempts),
    formatDuration(r.durationMs),
    // Error texts can carry multi-line output from a peer; one row per check keeps the table intact.
    (r.error ?? '').replace(/\s+/g, ' ').trim(),
  ];
}

function renderTable(rows: string[][]): string[] {
  const widths = HEADERS.map((_, col) => Math.max(...rows.map((row) => (row[col] ?? '').length)));
  return rows.map((row) =>
    row
      .map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd(widths[col] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

function summary(verdict: HealthVerdict): string {
  const total = verdict.results.length;
  const passed = verdict.results.filter((r) => r.passed).length;
  if (!verdict.passed) return `verdict: FAIL (required checks failed: ${verdict.failed.join(', ')})`;
  const wantedFailures = total - passed;
  const note = wantedFailures > 0 ? `; ${wantedFailures} wanted check(s) failed` : '';
  return `verdict: PASS (${passed}/${total} checks passed${note})`;
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}
