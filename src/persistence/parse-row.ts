import type { z } from 'zod';
import { InternalError } from '../domain/errors.js';

/** Validates a row read from SQLite: a corrupt row is an INTERNAL error naming it, never a silent default. */
export function parseRow<S extends z.ZodType>(schema: S, row: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(row);
  if (!parsed.success) {
    throw new InternalError(`${what} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}
