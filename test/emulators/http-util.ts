import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/** A fault the next matching requests get. */
export interface Fault {
  /** `METHOD /path` prefix, e.g. 'POST /api/v3/order'. */
  match: string;
  /**
   * - `accept-then-timeout`: the request is processed, the answer never sent (the client times out).
   * - `reset`: the connection is destroyed before processing.
   * - `status500` / `status503` / `status429`: an error answer without processing.
   * - `accept-then-reset`: processed, then the connection destroyed.
   */
  kind: 'accept-then-timeout' | 'accept-then-reset' | 'reset' | 'status500' | 'status503' | 'status429';
  /** How many requests it applies to. @defaultValue 1 */
  times?: number;
}

export interface Routed {
  method: string;
  path: string;
  query: URLSearchParams;
  rawQuery: string;
  body: string;
  headers: IncomingMessage['headers'];
}

export interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * A small HTTP server on 127.0.0.1 with fault injection, a request log and a clean close; optionally
 * websocket streams on the same port (`onStream`), with the dropped-stream faults `dropStreams()` and
 * `acceptStreams = false` (new connections refused until set back).
 */
export class EmulatorServer {
  readonly faults: Fault[] = [];
  readonly requests: { method: string; path: string; at: number }[] = [];
  /** Answers being held back (accept-then-timeout), released on close. */
  private readonly held = new Set<ServerResponse>();
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  /** Added to every answer (a slow venue). */
  delayMs = 0;
  /** Time spent inside the handler, per request (the emulator's own response time). */
  readonly handlerMs: number[] = [];
  /** The same, with each request's method and path. */
  readonly handled: { method: string; path: string; ms: number }[] = [];
  /** While false, websocket upgrades are refused (the connection destroyed): a stream that stays down. */
  acceptStreams = true;
  readonly streamClients = new Set<WebSocket>();
  /** Websocket connections accepted so far (reconnects included). */
  streamConnections = 0;
  private streamHandler: ((ws: WebSocket, path: string) => void) | undefined;
  private wss: WebSocketServer | undefined;

  constructor(private readonly handle: (r: Routed) => Answer | Promise<Answer>) {}

  /** Serves websocket connections (any path) with `handler`; call before listen. */
  onStream(handler: (ws: WebSocket, path: string) => void): void {
    this.streamHandler = handler;
  }

  /** The dropped-stream fault: every open websocket is cut (no close frame); returns how many. */
  dropStreams(): number {
    const n = this.streamClients.size;
    for (const ws of this.streamClients) ws.terminate();
    this.streamClients.clear();
    return n;
  }

  async listen(port = 0): Promise<number> {
    this.server = createServer((req, res) => void this.onRequest(req, res));
    if (this.streamHandler !== undefined) {
      const handler = this.streamHandler;
      this.wss = new WebSocketServer({ noServer: true });
      this.server.on('upgrade', (req, socket, head) => {
        if (!this.acceptStreams) return void socket.destroy();
        this.wss!.handleUpgrade(req, socket, head, (ws) => {
          this.streamConnections++;
          this.streamClients.add(ws);
          ws.on('close', () => this.streamClients.delete(ws));
          handler(ws, new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
        });
      });
    }
    this.server.keepAliveTimeout = 60_000;
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  inject(fault: Fault): void {
    this.faults.push({ times: 1, ...fault });
  }

  count(method: string, path: string): number {
    return this.requests.filter((r) => r.method === method && r.path === path).length;
  }

  async close(): Promise<void> {
    this.dropStreams();
    this.wss?.close();
    for (const res of this.held) res.destroy();
    this.held.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }

  private takeFault(method: string, path: string): Fault | undefined {
    const key = `${method} ${path}`;
    const i = this.faults.findIndex((f) => key.startsWith(f.match));
    if (i < 0) return undefined;
    const f = this.faults[i]!;
    f.times = (f.times ?? 1) - 1;
    if (f.times <= 0) this.faults.splice(i, 1);
    return f;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const path = url.pathname;
    this.requests.push({ method, path, at: Date.now() });
    const fault = this.takeFault(method, path);
    if (fault?.kind === 'reset') return void req.socket.destroy();
    if (fault?.kind === 'status500' || fault?.kind === 'status503' || fault?.kind === 'status429') {
      const status = Number(fault.kind.slice(6));
      return this.send(res, { status, body: status === 429 ? { code: -1003, msg: 'Too many requests.' } : { code: -1001, msg: 'Internal error; unable to process your request. Please try again.' }, headers: status === 429 ? { 'Retry-After': '1' } : {} });
    }
    const rawQuery = url.search.startsWith('?') ? url.search.slice(1) : '';
    const t0 = performance.now();
    let answer: Answer;
    try {
      answer = await this.handle({ method, path, query: url.searchParams, rawQuery, body: Buffer.concat(chunks).toString('utf8'), headers: req.headers });
    } catch (err) {
      answer = { status: 500, body: { code: -1001, msg: (err as Error).message } };
    }
    const ms = performance.now() - t0;
    this.handlerMs.push(ms);
    this.handled.push({ method, path, ms });
    if (fault?.kind === 'accept-then-timeout') {
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      return;
    }
    if (fault?.kind === 'accept-then-reset') return void req.socket.destroy();
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    this.send(res, answer);
  }

  private send(res: ServerResponse, a: Answer): void {
    if (res.destroyed) return;
    const body = a.body === undefined ? '' : JSON.stringify(a.body);
    res.writeHead(a.status, { 'Content-Type': 'application/json', ...(a.headers ?? {}) });
    res.end(body);
  }
}

/** A 200 answer with a JSON body. */
export function ok(body: unknown): Answer {
  return { status: 200, body };
}
