/**
 * Embedded PostgreSQL: PGlite (PostgreSQL compiled to WebAssembly) persisted in a directory and
 * served on 127.0.0.1 over the ordinary wire protocol, so postgres.js, pg-boss (node-postgres) and
 * psql connect to it exactly as to a real server.
 *
 * Why not PGLiteSocketServer as it comes: PGlite is ONE backend session. pglite-socket 0.2.x
 * accepts several connections (`maxConnections`, default 1) and multiplexes them onto that session
 * one protocol message at a time, keeping a connection exclusive only inside an explicit
 * BEGIN...COMMIT. Extended-protocol exchanges (Parse/Bind/Describe/Execute ... Sync) of different
 * connections can then interleave; they share the unnamed statement and portal and the
 * "skip until Sync" error state, so one connection can get another's rows or lose its messages
 * after another's error. (Measured: with two clients and a failing query in the mix, dozens of
 * 600 concurrent queries returned wrong results; see test/integration/db.test.ts.)
 *
 * This module keeps pglite-socket's per-connection PGLiteSocketHandler (wire framing, SSL refusal,
 * cancel requests) and replaces the queue with one that gives a connection the session from its
 * first message until the server answers ReadyForQuery with status Idle — the end of a protocol
 * exchange outside a transaction block. Connections therefore interleave only at the boundaries
 * where a real server would be idle. What cannot be emulated stays: all connections share one
 * session (SET, temp tables, session advisory locks, LISTEN are common to all), and a connection
 * that sits idle inside a transaction makes every other connection wait.
 */
import { mkdir } from "node:fs/promises";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketHandler, type PGLiteSocketHandlerOptions } from "@electric-sql/pglite-socket";

const READY_FOR_QUERY = 0x5a; // 'Z'
const STATUS_IDLE = 0x49; // 'I'
const SYNC_MESSAGE = new Uint8Array([0x53, 0, 0, 0, 4]); // 'S', length 4

export interface EmbeddedPostgresOptions {
  /** Directory holding the database files (created if missing). */
  dataDir: string;
  /** Interface to listen on. Default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /**
   * Connections accepted at once, across every client (our pool, pg-boss's pool, psql, ...).
   * Over the limit a client gets a proper "too many clients" (53300) error. Default 64.
   */
  maxConnections?: number;
  /** Log the queue and handlers to the console. */
  debug?: boolean;
}

export interface EmbeddedPostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  readonly connectionString: string;
  readonly port: number;
  readonly pglite: PGlite;
  stats(): { connections: number; queuedMessages: number; maxConnections: number };
  /** Closes client connections, the listener, and the database (flushing it to disk). */
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const host = options.host ?? "127.0.0.1";
  const maxConnections = options.maxConnections ?? 64;
  const debug = options.debug ?? false;
  await mkdir(options.dataDir, { recursive: true });
  const pglite = await PGlite.create(options.dataDir);
  const queue = new SessionQueue(pglite, debug);
  const handlers = new Set<PGLiteSocketHandler>();
  let stopping = false;

  const sockets = new Set<Socket>();

  const server = createServer((socket: Socket) => {
    if (stopping) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    if (handlers.size >= maxConnections) {
      // Like a real server: a FATAL error, then the connection is closed (not left half-open).
      socket.end(fatalError("53300", `sorry, too many clients already (embedded PGlite accepts ${maxConnections})`), () =>
        socket.destroy(),
      );
      return;
    }
    const handler = new PGLiteSocketHandler({
      queryQueue: queue as unknown as PGLiteSocketHandlerOptions["queryQueue"],
      closeOnDetach: true,
      debug,
    });
    handlers.add(handler);
    const forget = () => handlers.delete(handler);
    handler.addEventListener("close", forget);
    handler.addEventListener("error", forget);
    handler.attach(socket).catch(() => {
      forget();
      socket.destroy();
    });
  });

  try {
    await listen(server, options.port ?? 0, host);
  } catch (error) {
    await pglite.close();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;

  return {
    connectionString: `postgres://postgres@${urlHost}:${port}/postgres`,
    port,
    pglite,
    stats: () => ({ connections: handlers.size, queuedMessages: queue.getQueueLength(), maxConnections }),
    async stop() {
      if (stopping) return;
      stopping = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...handlers].map((handler) => handler.detach(true).catch(() => undefined)));
      handlers.clear();
      for (const socket of sockets) socket.destroy();
      await closed;
      await queue.idle();
      await pglite.close();
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** A FATAL ErrorResponse, as a real server sends before closing a connection it refuses. */
function fatalError(code: string, message: string): Buffer {
  const fields = Buffer.concat([
    Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${message}\0`, "utf8"),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(5);
  header[0] = 0x45; // 'E'
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

interface MessageJob {
  kind: "message";
  handlerId: number;
  message: Uint8Array;
  onData: (data: Uint8Array) => void;
  resolve: (bytes: number) => void;
  reject: (error: Error) => void;
}

interface ResetJob {
  kind: "reset";
  handlerId: number;
  resolve: () => void;
}

/**
 * Stands in for pglite-socket's QueryQueueManager (same three methods the handler calls):
 * runs one message at a time and hands the session to one connection per protocol exchange.
 */
class SessionQueue {
  private jobs: Array<MessageJob | ResetJob> = [];
  /** The connection whose exchange or transaction is in progress, if any. */
  private owner: number | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly db: PGlite,
    private readonly debug: boolean,
  ) {}

  enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      this.jobs.push({ kind: "message", handlerId, message, onData, resolve, reject });
      this.pump();
    });
  }

  getQueueLength(): number {
    return this.jobs.length;
  }

  clearQueueForHandler(handlerId: number): void {
    this.jobs = this.jobs.filter((job) => {
      if (job.kind === "message" && job.handlerId === handlerId) {
        job.reject(new Error("connection closed"));
        return false;
      }
      return true;
    });
  }

  /** Called when a connection goes away: if it held the session, end its exchange and roll back. */
  clearTransactionIfNeeded(handlerId: number): Promise<void> {
    if (this.owner !== handlerId) return Promise.resolve();
    return new Promise((resolve) => {
      this.jobs.unshift({ kind: "reset", handlerId, resolve });
      this.pump();
    });
  }

  /** Resolves when no job is running. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private log(message: string): void {
    if (this.debug) console.log(`[embedded-postgres] ${message}`);
  }

  private pump(): void {
    if (this.running) return;
    this.running = this.drain().finally(() => {
      this.running = null;
    });
  }

  private next(): MessageJob | ResetJob | undefined {
    const reset = this.jobs.findIndex((job) => job.kind === "reset");
    const index = reset >= 0 ? reset : this.owner === null ? 0 : this.jobs.findIndex((job) => job.handlerId === this.owner);
    if (index < 0 || index >= this.jobs.length) return undefined;
    return this.jobs.splice(index, 1)[0];
  }

  private async drain(): Promise<void> {
    for (let job = this.next(); job; job = this.next()) {
      if (job.kind === "reset") await this.reset(job);
      else await this.execute(job);
    }
  }

  private async execute(job: MessageJob): Promise<void> {
    const tracker = new ReadyForQueryTracker();
    let bytes = 0;
    // Startup packets have no type byte (their length, < 16 MiB, starts with a 0 byte); 'X' is Terminate.
    const keepsOwner = job.message[0] === 0 || job.message[0] === 0x58;
    try {
      await this.db.runExclusive(() =>
        this.db.execProtocolRawStream(job.message, {
          onRawData: (data) => {
            bytes += data.length;
            tracker.push(data);
            job.onData(data);
          },
        }),
      );
    } catch (error) {
      // Keep the session with this connection: the handler detaches on error, which resets it.
      this.owner = job.handlerId;
      this.log(`message from #${job.handlerId} failed: ${String(error)}`);
      job.reject(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (keepsOwner) {
      // A startup only runs while nobody holds the session and leaves it free; a Terminate changes nothing.
    } else if (tracker.status === null) {
      this.owner = job.handlerId; // mid-exchange (Parse/Bind/Execute/Flush...): keep the session
    } else {
      this.owner = tracker.status === STATUS_IDLE && !this.db.isInTransaction() ? null : job.handlerId;
    }
    job.resolve(bytes);
  }

  private async reset(job: ResetJob): Promise<void> {
    if (this.owner === job.handlerId) {
      this.log(`connection #${job.handlerId} left while holding the session; resetting`);
      const discard = { onRawData: () => undefined };
      try {
        await this.db.runExclusive(async () => {
          await this.db.execProtocolRawStream(SYNC_MESSAGE, discard);
          if (this.db.isInTransaction()) await this.db.execProtocolRawStream(simpleQuery("ROLLBACK"), discard);
        });
      } catch (error) {
        this.log(`reset failed: ${String(error)}`);
      }
      this.owner = null;
    }
    job.resolve();
  }
}

function simpleQuery(text: string): Uint8Array {
  const body = Buffer.from(`${text}\0`, "utf8");
  const message = Buffer.alloc(5 + body.length);
  message[0] = 0x51; // 'Q'
  message.writeInt32BE(body.length + 4, 1);
  body.copy(message, 5);
  return message;
}

/** Follows backend message framing across chunks and remembers the last ReadyForQuery status. */
class ReadyForQueryTracker {
  status: number | null = null;
  private readonly header = Buffer.alloc(5);
  private headerLength = 0;
  private type = 0;
  private bodyLeft = 0;
  private atBodyStart = false;

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.bodyLeft > 0) {
        if (this.atBodyStart && this.type === READY_FOR_QUERY) this.status = chunk[i]!;
        this.atBodyStart = false;
        const take = Math.min(this.bodyLeft, chunk.length - i);
        i += take;
        this.bodyLeft -= take;
        continue;
      }
      this.header[this.headerLength++] = chunk[i++]!;
      if (this.headerLength === 5) {
        this.type = this.header[0]!;
        this.bodyLeft = Math.max(0, this.header.readInt32BE(1) - 4);
        this.atBodyStart = true;
        this.headerLength = 0;
      }
    }
  }
}
