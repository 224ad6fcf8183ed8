/** Stable error codes: the code, not `instanceof`, crosses queue, worker and process boundaries. */
export const ErrorCode = {
  VALIDATION_ERROR: 'VALIDATION_ERROR',
  SESSION_NOT_FOUND: 'SESSION_NOT_FOUND',
  INVALID_TRANSITION: 'INVALID_TRANSITION',
  PREREQUISITES_NOT_MET: 'PREREQUISITES_NOT_MET',
  BROKER_NOT_FOUND: 'BROKER_NOT_FOUND',
  STRATEGY_NOT_FOUND: 'STRATEGY_NOT_FOUND',
  RISK_LIMIT: 'RISK_LIMIT',
  /** `get-command` for an id with no recorded outcome. */
  COMMAND_NOT_FOUND: 'COMMAND_NOT_FOUND',
  /** A sequenced command that arrived after its place in its session's order was skipped. */
  OUT_OF_ORDER: 'OUT_OF_ORDER',
  /**
   * SQLite cannot write (disk full, I/O error, ...): the command was not applied and nothing of it is
   * recorded. Submit it again once `/readyz` is 200.
   */
  STORAGE_UNAVAILABLE: 'STORAGE_UNAVAILABLE',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const CODES = new Set<string>(Object.values(ErrorCode));

/** Base class of every error sessiond reports to a caller. */
export class SessiondError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = this.constructor.name;
    this.code = code;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; details?: unknown } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  /** `CODE: message`, the form that crosses the queue. */
  toWire(): string {
    return `${this.code}: ${this.message}`;
  }
}

export class ValidationError extends SessiondError {
  constructor(message: string, details?: unknown) {
    super(ErrorCode.VALIDATION_ERROR, message, details);
  }
}

export class SessionNotFoundError extends SessiondError {
  constructor(readonly sessionId: string) {
    super(ErrorCode.SESSION_NOT_FOUND, `session ${sessionId} does not exist`);
  }
}

export class InvalidTransitionError extends SessiondError {
  constructor(
    readonly sessionId: string,
    readonly state: string,
    readonly command: string,
  ) {
    super(ErrorCode.INVALID_TRANSITION, `session ${sessionId} is ${state}; cannot ${command}`);
  }
}

export interface PrerequisiteCheck {
  name: string;
  passed: boolean;
  reason: string;
}

export class PrerequisitesNotMetError extends SessiondError {
  constructor(
    readonly strategyId: string,
    readonly checks: PrerequisiteCheck[],
  ) {
    const failed = checks.filter((c) => !c.passed);
    super(
      ErrorCode.PREREQUISITES_NOT_MET,
      `strategy ${strategyId} failed ${failed.length} of ${checks.length} checks: ` +
        failed.map((c) => `${c.name} (${c.reason})`).join('; '),
      { checks },
    );
  }
}

export class BrokerNotFoundError extends SessiondError {
  constructor(readonly brokerId: string) {
    super(ErrorCode.BROKER_NOT_FOUND, `broker ${brokerId} is not registered`);
  }
}

export class CommandNotFoundError extends SessiondError {
  constructor(readonly commandId: string) {
    super(ErrorCode.COMMAND_NOT_FOUND, `command ${commandId} has no recorded outcome (never applied, still queued, or a read-only command)`);
  }
}

export class OutOfOrderError extends SessiondError {
  constructor(message: string, details?: unknown) {
    super(ErrorCode.OUT_OF_ORDER, message, details);
  }
}

export class StrategyNotFoundError extends SessiondError {
  constructor(readonly strategyId: string) {
    super(ErrorCode.STRATEGY_NOT_FOUND, `strategy ${strategyId} is not known`);
  }
}

export class RiskLimitError extends SessiondError {
  constructor(message: string, details?: unknown) {
    super(ErrorCode.RISK_LIMIT, message, details);
  }
}

export class InternalError extends SessiondError {
  constructor(message: string, details?: unknown) {
    super(ErrorCode.INTERNAL, message, details);
  }
}

export class StorageUnavailableError extends SessiondError {
  constructor(
    readonly sqliteCode: string,
    cause: string,
  ) {
    super(ErrorCode.STORAGE_UNAVAILABLE, `SQLite cannot write (${sqliteCode}: ${cause}); the command was not applied, submit it again when /readyz is 200`, { sqliteCode });
  }
}

// Result codes (better-sqlite3's SqliteError.code, extended codes included) that mean the storage, not the
// command, failed: the same command succeeds once the disk has room or the device answers again.
const STORAGE_FAULT = /^SQLITE_(FULL|IOERR|CANTOPEN|READONLY|BUSY|LOCKED|PROTOCOL|CORRUPT|NOTADB|NOLFS)(_|$)/;

/** Whether an error is a storage fault (disk full, I/O error, locked or read-only database). */
export function isStorageFault(err: unknown): boolean {
  if (err instanceof StorageUnavailableError) return true;
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && STORAGE_FAULT.test(code);
}

/** Any thrown value as a SessiondError; storage faults become STORAGE_UNAVAILABLE, other unknown failures INTERNAL. */
export function toSessiondError(err: unknown): SessiondError {
  if (err instanceof SessiondError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (isStorageFault(err)) return new StorageUnavailableError((err as { code: string }).code, message);
  return new InternalError(message);
}

/** Parses `CODE: message` back into its parts (the inverse of toWire). */
export function parseWireError(text: string): { code: ErrorCode; message: string } {
  const m = /^([A-Z_]+): ([\s\S]*)$/.exec(text);
  if (m && CODES.has(m[1]!)) return { code: m[1] as ErrorCode, message: m[2]! };
  return { code: ErrorCode.INTERNAL, message: text };
}
