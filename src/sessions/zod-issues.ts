import type { z } from 'zod';

const MAX_MESSAGE = 200;
const MAX_SEGMENT = 40;

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/**
 * `path: message` for every issue (at most 10), joined: what a VALIDATION_ERROR says. Paths and messages are
 * clipped: they may quote a hostile job's keys, and an error must not echo 100 kB back.
 */
export function zodIssues(error: z.ZodError): string {
  const shown = error.issues.slice(0, 10).map((i) => {
    const path = i.path.length ? i.path.map((p) => clip(String(p), MAX_SEGMENT)).join('.') : '(root)';
    return `${path}: ${clip(i.message, MAX_MESSAGE)}`;
  });
  if (error.issues.length > 10) shown.push(`and ${error.issues.length - 10} more`);
  return shown.join('; ');
}
