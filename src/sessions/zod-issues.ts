import type { z } from 'zod';

/** `path: message` for every issue, joined: what a VALIDATION_ERROR says. */
export function zodIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}
