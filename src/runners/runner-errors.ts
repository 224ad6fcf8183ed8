import { ErrorCode } from '../domain/errors.js';

/** `CODE: message` when the error has a code (STRATEGY_FAILED, INTERNAL, ...). @internal */
export function wire(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && code.length > 0 ? `${code}: ${err.message}` : `${ErrorCode.INTERNAL}: ${err.message}`;
  }
  return `${ErrorCode.INTERNAL}: ${String(err)}`;
}

/** A failed step's kind for metrics: the StrategyStepError kind (threw, exited, timeout) or the error code. @internal */
export function kindOf(err: unknown): string {
  const e = err as { kind?: unknown; code?: unknown } | undefined;
  if (typeof e?.kind === 'string') return e.kind;
  if (typeof e?.code === 'string') return e.code;
  return 'error';
}

/** @internal */
export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A money figure in a reason text: 12 significant digits, no float noise. @internal */
export function round(x: number): string {
  return String(Number(x.toPrecision(12)));
}
