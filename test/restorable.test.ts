import test from 'ava';
import fc from 'fast-check';
import { isPlainRestorable, restorableSchemaAccepts } from '../src/sessions/restorable.js';

test("the snapshot check's fast path accepts only snapshots the schema accepts", (t) => {
  const base = { status: 'active', value: 'running', historyValue: {}, context: { sessionId: 'a', createdAt: 'x', updatedAt: 'y', startedAt: 'z' }, children: {} };
  const odd = fc.oneof(fc.constantFrom(null, undefined, 0, '', 'active', 'done', 'created', 'running', 'paused', 'stopped', [], {}, { sessionId: 'a' }), fc.jsonValue());
  const at = fc.constantFrom('status', 'value', 'context', 'extra', 'context.sessionId', 'context.createdAt', 'context.updatedAt', 'context.extra');
  let fast = 0;
  fc.assert(
    fc.property(fc.array(fc.record({ at, value: odd }), { maxLength: 3 }), (changes) => {
      const s = structuredClone(base) as Record<string, unknown>;
      for (const { at: path, value } of changes) {
        const [a, b] = path.split('.') as [string, string | undefined];
        if (b === undefined) s[a] = value;
        else if (s[a] !== null && typeof s[a] === 'object') (s[a] as Record<string, unknown>)[b] = value;
      }
      if (!isPlainRestorable(s)) return true;
      fast++;
      return restorableSchemaAccepts(s);
    }),
    { numRuns: 3000, seed: 11 },
  );
  t.true(fast > 300, `fast path taken ${fast} times`);
});
