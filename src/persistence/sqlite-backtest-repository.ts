import { z } from 'zod';
import { BacktestMetricsSchema, type BacktestRecord } from '../domain/backtest.js';
import type { Db } from './database.js';
import type { BacktestRepository } from './ports.js';

interface BacktestRow {
  id: string;
  strategy_id: string;
  params: string;
  data_ref: string;
  metrics: string;
  passed: number;
  checks: string;
  created_at: string;
  source: string;
  data: string | null;
}

const ChecksSchema = z.array(z.object({ name: z.string(), passed: z.boolean(), reason: z.string() }));
const SourceSchema = z.enum(['run', 'recorded']);
const DataSchema = z.object({ file: z.string(), sha256: z.string(), rows: z.number().int().min(0), from: z.string(), to: z.string() }).strict();

function toRecord(r: BacktestRow): BacktestRecord {
  return {
    id: r.id,
    strategyId: r.strategy_id,
    params: z.record(z.string(), z.unknown()).parse(JSON.parse(r.params)),
    dataRef: r.data_ref,
    metrics: BacktestMetricsSchema.parse(JSON.parse(r.metrics)),
    passed: r.passed === 1,
    checks: ChecksSchema.parse(JSON.parse(r.checks)),
    createdAt: r.created_at,
    source: SourceSchema.parse(r.source),
    ...(r.data === null ? {} : { data: DataSchema.parse(JSON.parse(r.data)) }),
  };
}

export class SqliteBacktestRepository implements BacktestRepository {
  constructor(private readonly db: Db) {}

  async save(record: BacktestRecord): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO backtests (id, strategy_id, params, data_ref, metrics, passed, checks, created_at, source, data)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET metrics = excluded.metrics, passed = excluded.passed, checks = excluded.checks`,
      )
      .run(
        record.id,
        record.strategyId,
        JSON.stringify(record.params),
        record.dataRef,
        JSON.stringify(record.metrics),
        record.passed ? 1 : 0,
        JSON.stringify(record.checks),
        record.createdAt,
        record.source,
        record.data === undefined ? null : JSON.stringify(record.data),
      );
  }

  async getById(id: string): Promise<BacktestRecord | null> {
    const row = this.db.prepare('SELECT * FROM backtests WHERE id = ?').get(id) as BacktestRow | undefined;
    return row ? toRecord(row) : null;
  }

  async listByStrategy(strategyId: string): Promise<BacktestRecord[]> {
    const rows = this.db
      .prepare('SELECT * FROM backtests WHERE strategy_id = ? ORDER BY created_at DESC, id')
      .all(strategyId) as BacktestRow[];
    return rows.map(toRecord);
  }
}
