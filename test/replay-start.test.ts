import test from 'ava';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBacktestHandler } from '../src/commands/backtest-command.js';
import { tempDir } from './helpers/daemon.js';
import { buildTradingRig, type TradingRig } from './helpers/trading.js';

const dir = tempDir('sessiond-replay-start-');
const HEADER = 'time,symbol,open,high,low,close,volume';
const row = (i: number, open = 10): string => `${Date.UTC(2024, 0, 2) + i * 60_000},AAA,${open},11,${Math.min(open, 9)},10.5,100`;
let rig: TradingRig;
test.before(async () => {
  rig = await buildTradingRig({ file: join(dir, 'sessiond.db') });
});
test.after.always(async () => {
  await rig?.close();
});

const start = (id: string, file: string) =>
  rig.manager.startSession(
    { id, kind: 'paper', strategy: { id: 'buy-and-hold' }, symbols: ['AAA'], feed: { type: 'replay', file } },
    { commandId: `cmd-${id}`, source: 'command' },
  );

test('a paper start on a file a backtest refuses is refused up front with the backtest\'s VALIDATION_ERROR', async (t) => {
  const backtest = createBacktestHandler({ manager: rig.manager, catalog: rig.services.catalog, pool: rig.services.pool, files: rig.services.barFiles });
  const cases: [string, string, RegExp][] = [
    ['empty', '', /^empty\.csv: no header row/],
    ['header-only', `${HEADER}\n`, /^header-only\.csv:1: no bars after the header$/],
    ['zero-price', [HEADER, row(0), row(1, 0)].join('\n'), /^zero-price\.csv:3: open must be positive$/],
    ['negative', [HEADER, row(0), row(1, -1)].join('\n'), /^negative\.csv:3: open must be positive$/],
    ['duplicate', [HEADER, row(0), row(1), row(1)].join('\n'), /^duplicate\.csv:4: a second bar for the same symbol and time as line 3$/],
    ['unsorted', [HEADER, row(0), row(2), row(1)].join('\n'), /^unsorted\.csv:4: older than the same symbol's bar on line 3/],
  ];
  for (const [name, text, message] of cases) {
    writeFileSync(join(dir, `${name}.csv`), text);
    const refused = await t.throwsAsync(start(`rs-${name}`, `${name}.csv`));
    t.like(refused, { code: 'VALIDATION_ERROR' }, name);
    t.regex(refused!.message, message, name);
    const bt = await t.throwsAsync(backtest({ strategyId: 'buy-and-hold', data: `${name}.csv`, symbols: ['AAA'] }, { commandId: `bt-${name}` }));
    t.is(bt!.message, refused!.message.replace(/^feed\.file:/, 'data:'), `${name}: the same refusal as the backtest`);
    // Nothing was created: no session, no runner; the refusal is the command's recorded outcome.
    t.throws(() => rig.manager.getSession(`rs-${name}`), { code: 'SESSION_NOT_FOUND' });
    t.like(await t.throwsAsync(start(`rs-${name}`, `${name}.csv`)), { code: 'VALIDATION_ERROR', message: refused!.message });
  }
});

test('a start naming a FIFO, a file outside the data directories or a missing file is refused at once', async (t) => {
  execFileSync('mkfifo', [join(dir, 'pipe.csv')]);
  t.like(await t.throwsAsync(start('rs-fifo', 'pipe.csv')), { code: 'VALIDATION_ERROR', message: 'feed.file: "pipe.csv" is not a regular file (a FIFO)' });
  t.like(await t.throwsAsync(start('rs-shadow', '/etc/shadow')), {
    code: 'VALIDATION_ERROR',
    message: 'feed.file: "/etc/shadow" is outside the data directories (marketData.dirs)',
  });
  t.like(await t.throwsAsync(start('rs-environ', '../../proc/self/environ')), { code: 'VALIDATION_ERROR', message: 'feed.file: "../../proc/self/environ" is outside the data directories (marketData.dirs)' });
  t.like(await t.throwsAsync(start('rs-missing', 'missing.csv')), { code: 'VALIDATION_ERROR', message: 'feed.file: "missing.csv" cannot be read (ENOENT)' });
  t.deepEqual(rig.manager.listSessions().map((s) => s.id).filter((id) => /^rs-(fifo|shadow|environ|missing)$/.test(id)), []);
});

test('a valid replay file starts running', async (t) => {
  writeFileSync(join(dir, 'good.csv'), [HEADER, row(0), row(1), row(2)].join('\n'));
  const view = await start('rs-good', 'good.csv');
  t.is(view.status, 'running');
});
