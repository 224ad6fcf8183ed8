import type { Redis } from 'ioredis';
import type { Db } from '../persistence/database.js';

export interface CheckResult {
  ok: boolean;
  detail?: string;
}

/** What /readyz reports. `down` names every failed check (`recovery`, `redis`, `sqlite`). */
export interface ReadinessReport {
  ready: boolean;
  down: string[];
  checks: Record<string, CheckResult>;
}

export type ReadinessCheck = () => Promise<CheckResult> | CheckResult;

/** Runs every check in parallel; a check that throws or takes longer than `timeoutMs` is down. */
export async function readiness(checks: Record<string, ReadinessCheck>, timeoutMs = 1000): Promise<ReadinessReport> {
  const names = Object.keys(checks);
  const results = await Promise.all(
    names.map(async (name): Promise<CheckResult> => {
      let timer: NodeJS.Timeout | undefined;
      try {
        return await Promise.race([
          Promise.resolve().then(() => checks[name]!()),
          new Promise<CheckResult>((res) => {
            timer = setTimeout(() => res({ ok: false, detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
          }),
        ]);
      } catch (err) {
        return { ok: false, detail: err instanceof Error ? err.message : String(err) };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const out: Record<string, CheckResult> = {};
  names.forEach((n, i) => (out[n] = results[i]!));
  const down = names.filter((n) => !out[n]!.ok);
  return { ready: down.length === 0, down, checks: out };
}

/**
 * Redis is up when the connection is `ready` and answers PING. The status is checked first because a
 * client made with `maxRetriesPerRequest: null` (as BullMQ needs) queues a PING forever while reconnecting.
 */
export function redisCheck(redis: Redis): ReadinessCheck {
  return async () => {
    if (redis.status !== 'ready') return { ok: false, detail: `connection ${redis.status}` };
    const pong = await redis.ping();
    return pong === 'PONG' ? { ok: true } : { ok: false, detail: `PING answered ${pong}` };
  };
}

/**
 * SQLite is up when the handle is open, a trivial query runs (a locked or vanished file throws) and, given a
 * StorageGuard, no storage fault is current: a full disk still reads, but it does not write.
 */
export function sqliteCheck(db: Db, storage?: { readonly fault: { code: string; since: string } | undefined }): ReadinessCheck {
  return () => {
    if (!db.open) return { ok: false, detail: 'database closed' };
    const fault = storage?.fault;
    if (fault !== undefined) return { ok: false, detail: `cannot write since ${fault.since} (${fault.code})` };
    db.prepare('SELECT 1 FROM sessions LIMIT 1').get();
    return { ok: true };
  };
}
