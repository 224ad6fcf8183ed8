import { Worker, type Job, type JobJson } from 'bullmq';
import { LIMITS } from '../domain/limits.js';

/**
 * What a job's data becomes when BullMQ cannot use it (not JSON, or over the size limit): the consumer fails
 * such a job with VALIDATION_ERROR instead of letting the parse error escape (BullMQ would leave the job
 * active, then redeliver it forever).
 */
export class UnreadableJobData {
  constructor(readonly reason: string) {}
}

/** The fields of a raw job hash that are JSON, as BullMQ stores them. */
const JSON_FIELDS = ['data', 'opts', 'progress', 'parent'] as const;

/**
 * Why a raw job hash (HGETALL) cannot be read, or undefined when it can. Never quotes the content.
 */
export function unreadableReason(raw: Record<string, string>): string | undefined {
  for (const field of JSON_FIELDS) {
    const text = raw[field];
    if (text === undefined || text === '') continue;
    if (field === 'data' && Buffer.byteLength(text, 'utf8') > LIMITS.jobDataBytes) {
      return `job data is ${Buffer.byteLength(text, 'utf8')} bytes; the limit is ${LIMITS.jobDataBytes}`;
    }
    try {
      JSON.parse(text);
    } catch {
      return `job ${field} is not valid JSON`;
    }
  }
  return undefined;
}

/** A BullMQ Worker whose jobs never throw while being built from Redis: unreadable data becomes UnreadableJobData. */
export class CommandWorker extends Worker {
  protected override createJob(json: JobJson, jobId: string): Job {
    const text = json.data ?? '{}';
    const bytes = Buffer.byteLength(text, 'utf8');
    let reason: string | undefined;
    if (bytes > LIMITS.jobDataBytes) reason = `job data is ${bytes} bytes; the limit is ${LIMITS.jobDataBytes}`;
    else {
      try {
        JSON.parse(text);
      } catch {
        reason = 'job data is not valid JSON';
      }
    }
    if (reason === undefined) return super.createJob(json, jobId);
    const job = super.createJob({ ...json, data: 'null' }, jobId);
    job.data = new UnreadableJobData(reason);
    return job;
  }
}
