import { z } from 'zod';
import { ID_PATTERN, ID_RULE } from './ids.js';

/** Zod schema of an id that obeys the rule of ids.ts (apart from it, so code that only checks ids loads no zod). */
export const IdSchema = z.string().regex(ID_PATTERN, ID_RULE);
