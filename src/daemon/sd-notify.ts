import { execFile } from 'node:child_process';
import type { Logger } from 'pino';

/*
 * Why a child process: the sd_notify protocol is one datagram on the AF_UNIX socket named by NOTIFY_SOCKET,
 * and Node's `dgram` speaks only udp4/udp6. A native addon (or a raw-socket package) would add a compile step
 * and a dependency for two messages per process lifetime, so we run Debian's /usr/bin/systemd-notify instead.
 *
 * That child is not the daemon, so it sends `--pid=<daemon pid>` (MAINPID=) and the unit needs NotifyAccess=all:
 * with the default NotifyAccess=main systemd drops messages from any process but the main one. systemd 252+
 * follows each message with a BARRIER=1 and waits for the manager to read it, so the child exiting quickly does
 * not lose the message.
 */

export interface SdNotifyOptions {
  /** @defaultValue process.env.NOTIFY_SOCKET */
  socket?: string | undefined;
  /** @defaultValue 'systemd-notify' (on PATH; /usr/bin/systemd-notify on Debian) */
  command?: string;
  /** The daemon's pid (MAINPID). @defaultValue process.pid */
  pid?: number;
  /** @defaultValue 5000 */
  timeoutMs?: number;
  logger?: Logger | undefined;
}

export const DEFAULT_SD_NOTIFY_OPTIONS = { command: 'systemd-notify', timeoutMs: 5000 } as const;

/**
 * Tells systemd about readiness and shutdown when started by it (NOTIFY_SOCKET set); does nothing otherwise.
 * A failure to notify is logged, never thrown: systemd then times the start out, which says more than a crash.
 *
 * @example
 * const sd = new SdNotify({ logger });
 * await sd.ready();    // after recovery: `systemctl start` returns now
 * await sd.stopping(); // on SIGTERM, before draining
 */
export class SdNotify {
  private readonly socket: string | undefined;
  private readonly command: string;
  private readonly pid: number;
  private readonly timeoutMs: number;
  private readonly logger: Logger | undefined;

  constructor(options: SdNotifyOptions = {}) {
    this.socket = 'socket' in options ? options.socket : process.env.NOTIFY_SOCKET;
    this.command = options.command ?? DEFAULT_SD_NOTIFY_OPTIONS.command;
    this.pid = options.pid ?? process.pid;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_SD_NOTIFY_OPTIONS.timeoutMs;
    this.logger = options.logger;
  }

  /** True when a service manager is listening. */
  get enabled(): boolean {
    return Boolean(this.socket);
  }

  /** READY=1 (and a STATUS= line for `systemctl status`). */
  ready(status?: string): Promise<boolean> {
    return this.send(['--ready', ...(status ? [`--status=${status}`] : [])]);
  }

  /** STOPPING=1: systemd shows the unit as deactivating while the daemon drains. */
  stopping(status?: string): Promise<boolean> {
    return this.send(['STOPPING=1', ...(status ? [`STATUS=${status}`] : [])]);
  }

  /** A free-form STATUS= line. */
  status(text: string): Promise<boolean> {
    return this.send([`--status=${text}`]);
  }

  private send(args: string[]): Promise<boolean> {
    if (!this.socket) return Promise.resolve(false);
    const argv = [`--pid=${this.pid}`, ...args];
    return new Promise((resolve) => {
      execFile(this.command, argv, { timeout: this.timeoutMs, env: { ...process.env, NOTIFY_SOCKET: this.socket } }, (err, _stdout, stderr) => {
        if (err) {
          this.logger?.warn({ err: err.message, stderr: String(stderr).trim(), args: argv }, 'systemd-notify failed');
          resolve(false);
        } else {
          this.logger?.debug({ args: argv }, 'systemd notified');
          resolve(true);
        }
      });
    });
  }
}
