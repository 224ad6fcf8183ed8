import { mulberry32 } from '../../src/market-data/synthetic-feed.js';

/** An independent model of the lifecycle, to say what applying commands in order must produce. */
export type Cmd = 'start' | 'pause' | 'resume' | 'stop';

const NEXT: Record<string, Partial<Record<Cmd, string>>> = {
  none: { start: 'running' },
  created: { start: 'running', stop: 'stopped' },
  running: { pause: 'paused', stop: 'stopped' },
  paused: { resume: 'running', stop: 'stopped' },
  stopped: {},
};

/** The outcome of each command applied in order: the resulting status, or the error code. */
export function expectedOutcomes(cmds: Cmd[]): string[] {
  let state = 'none';
  return cmds.map((c) => {
    const next = NEXT[state]![c];
    if (next) {
      state = next;
      return next;
    }
    if (state === 'none') return 'SESSION_NOT_FOUND';
    return 'INVALID_TRANSITION';
  });
}

/** A seeded PRNG (the synthetic feed's) so a failing run can be replayed. */
export const rng = mulberry32;

/** A random command sequence for one session: starts with start, mostly valid moves, some invalid ones. */
export function randomCommands(next: () => number, length: number): Cmd[] {
  const all: Cmd[] = ['pause', 'resume', 'pause', 'resume', 'stop'];
  const out: Cmd[] = ['start'];
  while (out.length < length) {
    const c = all[Math.floor(next() * all.length)]!;
    // Keep most sessions alive for a while: a stop only 1 time in 4 it is drawn.
    if (c === 'stop' && next() < 0.75) continue;
    out.push(c);
  }
  return out;
}
