import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** Who holds a queue's lease, as stored in Redis. */
export interface LeaseHolder {
  owner: string;
  token: string;
  fence: number;
  pid: number;
  host: string;
  db: string;
}

/** Another daemon holds the queue's lease and this one was told not to wait. */
export class LeaseHeldError extends Error {
  readonly code = 'LEASE_HELD';
  constructor(
    readonly queue: string,
    readonly holder: LeaseHolder | undefined,
  ) {
    super(
      `queue ${queue} is leased by another sessiond (${describeHolder(holder)}); ` +
        'it alone consumes the queue. Stop it, give this daemon another queue.name, or start it as a standby (queue.standby / SESSIOND_STANDBY=true)',
    );
    this.name = this.constructor.name;
  }
}

export function describeHolder(h: LeaseHolder | undefined): string {
  return h ? `pid ${h.pid} on ${h.host}, database ${h.db}, fence ${h.fence}` : 'unknown holder';
}

// KEYS: lease, fence counter. ARGV: owner, token, ttlMs, pid, host, db.
// Free, expired, or held by the same owner (the same database on the same host: its previous process, since the
// database's owner lock proves that one is gone): take it with the next fencing number.
const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, v = pcall(cjson.decode, cur)
  if ok and type(v) == 'table' and v.owner ~= ARGV[1] then return {0, cur} end
end
local fence = redis.call('INCR', KEYS[2])
local val = cjson.encode({owner = ARGV[1], token = ARGV[2], fence = fence, pid = tonumber(ARGV[4]), host = ARGV[5], db = ARGV[6]})
redis.call('SET', KEYS[1], val, 'PX', ARGV[3])
return {1, val}
`;

// KEYS: lease. ARGV: token, ttlMs. 1 renewed, 0 held by another, -1 gone (expired).
const RENEW = `
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
local ok, v = pcall(cjson.decode, cur)
if ok and type(v) == 'table' and v.token == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

// KEYS: lease. ARGV: token.
const RELEASE = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, v = pcall(cjson.decode, cur)
if ok and type(v) == 'table' and v.token == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export interface QueueLeaseOptions {
  redis: Redis;
  /** Key prefix and queue name: the lease is `<prefix>:<queue>:lease`, its fence counter `<prefix>:<queue>:lease:fence`. */
  prefix: string;
  queue: string;
  /** The database this daemon owns (absolute path); with the host it makes the owner identity. */
  db: string;
  /** @defaultValue 15000 */
  ttlMs?: number;
  logger?: Logger | undefined;
  /** Called once when another daemon took the lease: this one must stop consuming. */
  onLost?: (holder: LeaseHolder | undefined) => void;
}

function parseHolder(text: string | undefined | null): LeaseHolder | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as LeaseHolder;
  } catch {
    return undefined;
  }
}

/**
 * The lease that makes one daemon the consumer of a queue: a Redis key holding the owner, a random token and a
 * fencing number (incremented at every acquisition), with an expiry renewed every ttl/3. The consumer checks
 * `held` before it applies each command: a daemon that could not renew within the ttl (paused, cut off from
 * Redis) applies nothing until it has renewed or re-acquired the lease, and one that finds another token in
 * the key has lost it for good (`onLost`).
 */
export class QueueLease {
  readonly key: string;
  readonly owner: string;
  readonly token = randomUUID();
  readonly ttlMs: number;
  private fenceNo: number | undefined;
  private validUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private lost = false;
  private waiters: (() => void)[] = [];
  private renewing: Promise<void> | undefined;

  constructor(private readonly o: QueueLeaseOptions) {
    this.key = `${o.prefix}:${o.queue}:lease`;
    this.owner = `${hostname()}:${o.db}`;
    this.ttlMs = o.ttlMs ?? 15_000;
  }

  /** The fencing number of this daemon's lease (undefined before it is acquired). */
  get fence(): number | undefined {
    return this.fenceNo;
  }

  /** True while the lease is ours and not past its expiry as last renewed. */
  get held(): boolean {
    return !this.lost && this.fenceNo !== undefined && Date.now() < this.validUntil;
  }

  /** Tries once. */
  async tryAcquire(): Promise<{ acquired: true; fence: number } | { acquired: false; holder: LeaseHolder | undefined }> {
    const started = Date.now();
    const [ok, value] = (await this.o.redis.eval(
      ACQUIRE,
      2,
      this.key,
      `${this.key}:fence`,
      this.owner,
      this.token,
      String(this.ttlMs),
      String(process.pid),
      hostname(),
      this.o.db,
    )) as [number, string];
    const holder = parseHolder(value);
    if (ok !== 1 || !holder) return { acquired: false, holder };
    this.fenceNo = holder.fence;
    this.validUntil = started + this.ttlMs;
    this.lost = false;
    return { acquired: true, fence: holder.fence };
  }

  /**
   * Acquires the lease. Held by another daemon: throws LeaseHeldError, or with `standby` logs that it waits and
   * polls every ttl/3 until the lease is free. Then renews it every ttl/3.
   */
  async acquire(options: { standby: boolean; signal?: AbortSignal }): Promise<number> {
    let announced = false;
    for (;;) {
      const r = await this.tryAcquire();
      if (r.acquired) {
        if (announced) this.o.logger?.info({ fence: r.fence, queue: this.o.queue }, 'standby: took the queue lease');
        this.startRenewal();
        return r.fence;
      }
      if (!options.standby) throw new LeaseHeldError(this.o.queue, r.holder);
      if (!announced) {
        this.o.logger?.warn({ queue: this.o.queue, holder: r.holder }, `standby: queue ${this.o.queue} is leased by another sessiond (${describeHolder(r.holder)}); waiting for its lease`);
        announced = true;
      }
      if (options.signal?.aborted) throw new Error('stopped while waiting for the queue lease');
      await new Promise((res) => setTimeout(res, Math.max(50, Math.floor(this.ttlMs / 3))));
    }
  }

  /** Resolves once the lease is held (at once when it is); never when it is lost. */
  whenHeld(): Promise<void> {
    if (this.held) return Promise.resolve();
    void this.renew();
    return new Promise((res) => this.waiters.push(res));
  }

  private startRenewal(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.renew(), Math.max(20, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  private renew(): Promise<void> {
    this.renewing ??= (async () => {
      if (this.lost || this.fenceNo === undefined) return;
      const started = Date.now();
      try {
        const r = (await this.o.redis.eval(RENEW, 1, this.key, this.token, String(this.ttlMs))) as number;
        if (r === 1) this.validUntil = started + this.ttlMs;
        else if (r === -1) {
          // Expired while we could not renew (paused, Redis away): take it again if nobody else has.
          const again = await this.tryAcquire();
          if (again.acquired) this.o.logger?.warn({ fence: again.fence, queue: this.o.queue }, 'the queue lease had expired; re-acquired it with a new fencing number');
          else this.markLost(again.holder);
        } else {
          this.markLost(parseHolder(await this.o.redis.get(this.key)));
        }
      } catch (err) {
        this.o.logger?.warn({ err: (err as Error).message }, 'could not renew the queue lease (Redis unreachable?); commands wait until it is renewed');
      }
      if (this.held) for (const w of this.waiters.splice(0)) w();
    })().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  private markLost(holder: LeaseHolder | undefined): void {
    if (this.lost) return;
    this.lost = true;
    clearInterval(this.timer);
    this.o.logger?.error({ queue: this.o.queue, holder, fence: this.fenceNo }, `lost the queue lease to another sessiond (${describeHolder(holder)})`);
    this.o.onLost?.(holder);
  }

  /** Stops renewing and deletes the lease if it is still ours, so a standby takes over at once. */
  async release(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.fenceNo === undefined || this.lost) return;
    this.lost = true;
    try {
      await this.o.redis.eval(RELEASE, 1, this.key, this.token);
    } catch {
      // Redis away: the lease expires by itself.
    }
  }
}
