import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { CommandClient, CommandTimeoutError } from '../commands/command-client.js';
import { SessiondError } from '../domain/errors.js';
import { record, table } from './format.js';
import { renderFills, renderHistory, renderLiveEvent, renderOrders, renderPnl, renderPositions } from './book-format.js';
import { watchLive } from './watch.js';
import { isEntry } from '../daemon/entry.js';

/** Exit statuses: the contract scripts rely on. */
export const EXIT = { OK: 0, REJECTED: 1, USAGE: 2, TIMEOUT: 3 } as const;

class UsageError extends Error {}

interface GlobalOptions {
  redis?: string;
  queue?: string;
  prefix?: string;
  json?: boolean;
  timeout: string;
}

const LIST_COLUMNS = ['id', 'kind', 'status', 'strategyId', 'brokerId', 'symbols', 'executionMode', 'stopReason', 'updatedAt'];

function readJsonFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${what} ${file} cannot be read: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what} ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

function parseJsonOption(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Turns a job's result into the table printed without --json. */
type Render = (result: unknown) => string;

function print(result: unknown, json: boolean, render?: Render): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else if (render) {
    process.stdout.write(`${render(result)}\n`);
  } else if (Array.isArray(result)) {
    process.stdout.write(result.length ? `${table(result as Record<string, unknown>[], LIST_COLUMNS)}\n` : '(none)\n');
  } else if (result && typeof result === 'object') {
    process.stdout.write(`${record(result as Record<string, unknown>)}\n`);
  } else {
    process.stdout.write(`${String(result)}\n`);
  }
}

/** Builds the CLI; `run` submits one command and resolves with the exit status. */
export function buildProgram(
  submit: (name: string, data: unknown, opts: { commandId?: string; render?: Render }) => Promise<void>,
  watch: (sessionId: string | undefined, opts: { max?: number }) => Promise<void> = async () => undefined,
): Command {
  const program = new Command('sessionctl')
    .description('Submit lifecycle commands to sessiond over its Redis queue and print the outcome')
    .option('--redis <url>', 'Redis URL (default: $REDIS_URL or redis://127.0.0.1:6379)')
    .option('--queue <name>', 'queue name', 'session-commands')
    .option('--prefix <prefix>', 'queue key prefix', 'sessiond')
    .option('--json', 'print JSON instead of a table')
    .option('--timeout <ms>', 'how long to wait for the daemon', '10000')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('start')
    .description('create a session and start it')
    .addOption(new Option('--kind <kind>', 'paper or live').choices(['paper', 'live']))
    .option('--strategy <id>', 'strategy id')
    .option('--params <json>', 'strategy params as JSON')
    .option('--symbols <list>', 'comma-separated symbols')
    .option('--broker <id>', 'broker id', undefined)
    .option('--account <id>', 'account id')
    .addOption(new Option('--mode <mode>', 'execution mode').choices(['auto', 'confirm', 'signal-only']))
    .option('--risk <json>', 'risk controls as JSON, e.g. {"maxOrderQty":10}')
    .option('--feed <json>', 'market data feed as JSON, e.g. {"type":"synthetic","seed":1}')
    .option('--config <file>', 'a SessionConfig JSON file; flags override its fields')
    .option('--session-id <id>', 'choose the session id (default: generated)')
    .option('--id <commandId>', 'command id: resubmitting it returns the first outcome')
    .action(async (o: Record<string, string | undefined>) => {
      const base = o.config ? (readJsonFile(o.config, 'config file') as Record<string, unknown>) : {};
      const cfg: Record<string, unknown> = { ...base };
      if (o.kind) cfg.kind = o.kind;
      if (o.strategy) cfg.strategy = { ...((base.strategy as object) ?? {}), id: o.strategy };
      if (o.params) cfg.strategy = { ...((cfg.strategy as object) ?? {}), params: parseJsonOption(o.params, '--params') };
      if (o.symbols) cfg.symbols = o.symbols.split(',').map((s) => s.trim()).filter(Boolean);
      if (o.broker) cfg.brokerId = o.broker;
      if (o.account) cfg.accountId = o.account;
      if (o.mode) cfg.executionMode = o.mode;
      if (o.risk) cfg.riskControls = parseJsonOption(o.risk, '--risk');
      if (o.feed) cfg.feed = parseJsonOption(o.feed, '--feed');
      if (o.sessionId) cfg.id = o.sessionId;
      if (!cfg.kind) throw new UsageError('start needs --kind paper|live (or kind in --config)');
      if (!cfg.strategy) throw new UsageError('start needs --strategy ID (or strategy in --config)');
      if (!cfg.symbols) throw new UsageError('start needs --symbols A,B (or symbols in --config)');
      await submit('start', cfg, { commandId: o.id });
    });

  for (const name of ['pause', 'resume'] as const) {
    program
      .command(`${name} <sessionId>`)
      .description(`${name} a session`)
      .option('--reason <text>', 'why (recorded in the history)')
      .option('--id <commandId>', 'command id')
      .action(async (sessionId: string, o: { reason?: string; id?: string }) => {
        await submit(name, name === 'pause' && o.reason ? { sessionId, reason: o.reason } : { sessionId }, { commandId: o.id });
      });
  }

  program
    .command('stop <sessionId>')
    .description('stop a session (final)')
    .option('--reason <text>', 'why (recorded as stopReason)')
    .option('--id <commandId>', 'command id')
    .action(async (sessionId: string, o: { reason?: string; id?: string }) => {
      await submit('stop', o.reason ? { sessionId, reason: o.reason } : { sessionId }, { commandId: o.id });
    });

  program
    .command('kill-switch')
    .description('stop every running or paused session')
    .option('--live-only', 'only live sessions')
    .option('--reason <text>', 'why')
    .option('--id <commandId>', 'command id')
    .action(async (o: { liveOnly?: boolean; reason?: string; id?: string }) => {
      await submit('kill-switch', { liveOnly: Boolean(o.liveOnly), ...(o.reason ? { reason: o.reason } : {}) }, { commandId: o.id });
    });

  program
    .command('show <sessionId>')
    .description('show one session')
    .action(async (sessionId: string) => submit('get-session', { sessionId }, {}));

  program
    .command('list')
    .description('list sessions')
    .option('--active', 'running and paused only')
    .addOption(new Option('--status <status>').choices(['created', 'running', 'paused', 'stopped']))
    .addOption(new Option('--kind <kind>').choices(['paper', 'live']))
    .action(async (o: { active?: boolean; status?: string; kind?: string }) =>
      submit('list-sessions', { activeOnly: Boolean(o.active), ...(o.status ? { status: o.status } : {}), ...(o.kind ? { kind: o.kind } : {}) }, {}),
    );

  program
    .command('command <commandId>')
    .description("a command's recorded outcome, from the daemon's SQLite (outlives Redis)")
    .action(async (commandId: string) => submit('get-command', { commandId }, {}));

  const backtest = program.command('backtest').description('backtest results');
  backtest
    .command('record')
    .description('store a backtest result (judged against the thresholds)')
    .requiredOption('--strategy <id>', 'strategy id')
    .requiredOption('--file <result.json>', 'JSON with {returnPct, maxDrawdownPct, sharpe, trades} (and optional params, dataRef)')
    .option('--id <commandId>', 'command id')
    .action(async (o: { strategy: string; file: string; id?: string }) => {
      const r = readJsonFile(o.file, 'result file') as Record<string, unknown>;
      const metrics = (r.metrics as Record<string, unknown>) ?? {
        returnPct: r.returnPct,
        maxDrawdownPct: r.maxDrawdownPct,
        sharpe: r.sharpe,
        trades: r.trades,
      };
      const data: Record<string, unknown> = { strategyId: o.strategy, metrics, dataRef: (r.dataRef as string) ?? o.file };
      if (r.params) data.params = r.params;
      await submit('record-backtest', data, { commandId: o.id });
    });

  backtest
    .command('run')
    .description('run a strategy over CSV bars in the daemon (worker pool + paper broker) and record the result')
    .requiredOption('--strategy <id>', 'strategy id')
    .requiredOption('--data <file.csv>', "bars (time,symbol,open,high,low,close,volume) under the daemon's marketData.dirs; a relative path is taken in the first of them")
    .option('--params <json>', 'strategy params as JSON')
    .option('--symbols <list>', 'comma-separated symbols (default: every symbol in the file)')
    .option('--risk <json>', 'risk controls as JSON')
    .option('--id <commandId>', 'command id')
    .action(async (o: { strategy: string; data: string; params?: string; symbols?: string; risk?: string; id?: string }) => {
      const data: Record<string, unknown> = { strategyId: o.strategy, data: o.data };
      if (o.params) data.params = parseJsonOption(o.params, '--params');
      if (o.symbols) data.symbols = o.symbols.split(',').map((s) => s.trim()).filter(Boolean);
      if (o.risk) data.riskControls = parseJsonOption(o.risk, '--risk');
      await submit('backtest', data, { commandId: o.id });
    });

  for (const [name, job] of [
    ['approve', 'approve-order'],
    ['reject', 'reject-order'],
  ] as const) {
    program
      .command(`${name} <sessionId> <clientOrderId>`)
      .description(`${name} an order held for approval (execution mode confirm)`)
      .option('--reason <text>', 'why')
      .option('--id <commandId>', 'command id')
      .action(async (sessionId: string, clientOrderId: string, o: { reason?: string; id?: string }) => {
        await submit(job, { sessionId, clientOrderId, ...(o.reason ? { reason: o.reason } : {}) }, { commandId: o.id });
      });
  }

  program
    .command('orders <sessionId>')
    .description("a session's orders, newest first: client order id, prices, fills, reason, approval expiry")
    .addOption(new Option('--status <status>').choices(['pending_approval', 'new', 'accepted', 'partially_filled', 'filled', 'cancelled', 'rejected', 'expired']))
    .option('--limit <n>', 'orders per page', '50')
    .option('--offset <n>', 'skip this many (newest first)', '0')
    .action(async (sessionId: string, o: { status?: string; limit: string; offset: string }) => {
      const limit = positiveInt(o.limit, '--limit');
      const offset = positiveInt(o.offset, '--offset', true);
      await submit('get-orders', { sessionId, limit, offset, ...(o.status ? { status: o.status } : {}) }, { render: renderOrders });
    });

  program
    .command('fills <sessionId>')
    .description("a session's fills, oldest first")
    .action(async (sessionId: string) => submit('get-fills', { sessionId }, { render: renderFills }));

  program
    .command('positions <sessionId>')
    .description("a session's positions (flat ones keep their realized PnL)")
    .action(async (sessionId: string) => submit('get-positions', { sessionId }, { render: renderPositions }));

  program
    .command('pnl [sessionId]')
    .description('realized, unrealized, equity, cash and drawdown: one session, or every session and the total')
    .action(async (sessionId: string | undefined) => submit('get-pnl', sessionId ? { sessionId } : {}, { render: renderPnl }));

  program
    .command('history <sessionId>')
    .description("a session's transitions: when, from -> to, event, source, command id, reason")
    .action(async (sessionId: string) => submit('get-history', { sessionId }, { render: renderHistory }));

  program
    .command('watch [sessionId]')
    .description('print transitions and order updates as they happen (Ctrl-C to end)')
    .option('--max <n>', 'exit after this many events')
    .action(async (sessionId: string | undefined, o: { max?: string }) => {
      await watch(sessionId, o.max !== undefined ? { max: positiveInt(o.max, '--max') } : {});
    });

  program
    .command('data')
    .description('market data')
    .command('download')
    .description("a broker's bars (closed ones, paged through its history) in the replay CSV format")
    .requiredOption('--broker <id>', 'a broker of the daemon config (credentials from the environment)')
    .requiredOption('--symbol <symbol>', 'a market of the broker, e.g. BTC/USDT or AAPL')
    .requiredOption('--timeframe <tf>', 'a timeframe of the broker: 1s (where it has it), 1m, 5m, 1h, 1d')
    .requiredOption('--from <time>', 'first bar time, ISO-8601 or epoch ms (inclusive)')
    .requiredOption('--to <time>', 'end, ISO-8601 or epoch ms (exclusive)')
    .requiredOption('--out <file>', 'the CSV file to write')
    .option('--force', 'replace an existing file')
    .action(async (o: { broker: string; symbol: string; timeframe: string; from: string; to: string; out: string; force?: boolean }) => {
      const { runDataDownload } = await import('./data-download.js');
      await runDataDownload({ ...o, json: Boolean(program.opts<GlobalOptions>().json) });
    });

  return program;
}

function positiveInt(text: string, what: string, zeroOk = false): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < (zeroOk ? 0 : 1)) throw new UsageError(`${what} must be a ${zeroOk ? 'non-negative' : 'positive'} integer`);
  return n;
}

/** Parses argv, runs the command, returns the exit status (0 ok, 1 rejected, 2 usage, 3 no daemon). */
export async function run(argv: string[]): Promise<number> {
  let client: CommandClient | undefined;
  let json = false;
  const program = buildProgram(
    async (name, data, opts) => {
      const g = program.opts<GlobalOptions>();
      json = Boolean(g.json);
      const timeoutMs = Number(g.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout must be a positive integer (ms)');
      client = new CommandClient({ redisUrl: g.redis, queueName: g.queue, prefix: g.prefix });
      const result = await client.submit(name, data, { commandId: opts.commandId, timeoutMs });
      print(result, json, opts.render);
    },
    async (sessionId, opts) => {
      const g = program.opts<GlobalOptions>();
      json = Boolean(g.json);
      await watchLive({
        redisUrl: g.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
        queueName: g.queue ?? 'session-commands',
        prefix: g.prefix ?? 'sessiond',
        sessionId,
        max: opts.max,
        onEvent: (e) => process.stdout.write(json ? `${JSON.stringify(e)}\n` : `${renderLiveEvent(e)}\n`),
      });
    },
  );
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`sessionctl: ${err.message}\n`);
      return EXIT.USAGE;
    }
    if (err instanceof CommandTimeoutError) {
      process.stderr.write(`TIMEOUT: ${err.message}\n`);
      return EXIT.TIMEOUT;
    }
    if (err instanceof SessiondError) {
      if (json) process.stdout.write(`${JSON.stringify({ error: { code: err.code, message: err.message } })}\n`);
      process.stderr.write(`${err.code}: ${err.message}\n`);
      return EXIT.REJECTED;
    }
    process.stderr.write(`sessionctl: ${(err as Error).message}\n`);
    return EXIT.REJECTED;
  } finally {
    await client?.close();
  }
}

/** The program: what bin/sessionctl.js calls (importing this module runs nothing). */
export async function main(): Promise<void> {
  process.exitCode = await run(process.argv.slice(2));
}

if (isEntry(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
