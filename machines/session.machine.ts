import { assertEvent, assign, setup } from 'xstate';

/** Timestamps travel in events so the machine stays pure and replays identically. */
export type SessionEvent =
  | { type: 'START'; at: string }
  | { type: 'PAUSE'; at: string; reason?: string }
  | { type: 'RESUME'; at: string }
  | { type: 'STOP'; at: string; reason?: string }
  | { type: 'RUNNER_FAILED'; at: string; error: string }
  | { type: 'RISK_BREACH'; at: string; reason: string };

export type SessionEventType = SessionEvent['type'];

export interface SessionContext {
  sessionId: string;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  stoppedAt?: string;
  stopReason?: string;
  pauseReason?: string;
  error?: string;
}

export interface SessionInput {
  sessionId: string;
  at: string;
}

export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as SessionInput,
  },
  actions: {
    markStarted: assign(({ context, event }) => {
      assertEvent(event, 'START');
      return { startedAt: context.startedAt ?? event.at, updatedAt: event.at };
    }),
    markPaused: assign(({ event }) => {
      assertEvent(event, ['PAUSE', 'RISK_BREACH']);
      return { pauseReason: event.reason ?? 'operator', updatedAt: event.at };
    }),
    markResumed: assign(({ event }) => {
      assertEvent(event, 'RESUME');
      return { pauseReason: undefined, updatedAt: event.at };
    }),
    markStopped: assign(({ event }) => {
      assertEvent(event, 'STOP');
      return { stoppedAt: event.at, stopReason: event.reason ?? 'operator', updatedAt: event.at };
    }),
    markFailed: assign(({ event }) => {
      assertEvent(event, 'RUNNER_FAILED');
      return { stoppedAt: event.at, stopReason: 'runner_failed', error: event.error, updatedAt: event.at };
    }),
  },
}).createMachine({
  id: 'session',
  initial: 'created',
  context: ({ input }) => ({ sessionId: input.sessionId, createdAt: input.at, updatedAt: input.at }),
  states: {
    created: {
      on: {
        START: { target: 'running', actions: 'markStarted' },
        STOP: { target: 'stopped', actions: 'markStopped' },
      },
    },
    running: {
      on: {
        PAUSE: { target: 'paused', actions: 'markPaused' },
        RISK_BREACH: { target: 'paused', actions: 'markPaused' },
        STOP: { target: 'stopped', actions: 'markStopped' },
        RUNNER_FAILED: { target: 'stopped', actions: 'markFailed' },
      },
    },
    paused: {
      on: {
        RESUME: { target: 'running', actions: 'markResumed' },
        STOP: { target: 'stopped', actions: 'markStopped' },
      },
    },
    stopped: { type: 'final' },
  },
});

export type SessionMachine = typeof sessionMachine;
