// `medgym serve-env --workers N`: a primary process forks N workers (node:cluster) that all listen
// on the same port; the primary hands each new connection to one of them. A session lives in the
// worker that created it: a WebSocket is one connection, so one worker, for its whole life; a plain
// HTTP request that lands on another worker is forwarded to the owner through the primary
// (affinity.ts, cluster_rpc.ts; docs/bridges.md, "Several workers"). The primary restarts a worker
// that dies and, on SIGINT/SIGTERM, asks every worker to close its sessions and exit.
import cluster, { type Worker } from 'node:cluster';
import { relayWorkerCalls } from './cluster_rpc';

/** The message the primary sends a worker to make it close its server and exit. */
export const SHUTDOWN_MESSAGE = 'medgym:shutdown';

export interface PrimaryOptions {
  workers: number;
  /** Printed (stdout) once every first-generation worker listens, with the address, e.g. the server's URL line. */
  onListening?: (address: { address: string; port: number }) => void;
  /** Progress lines (stderr by default): worker pids, deaths, restarts. */
  log?: (line: string) => void;
  /** How long a shutdown waits for a worker before SIGKILL. Default 10 s. */
  shutdownTimeoutMs?: number;
}

export interface Primary {
  /** Pids of the live workers, by worker index (0..N-1). */
  pids(): number[];
  /** Asks every worker to exit and resolves once all have (SIGKILL after the timeout). */
  stop(): Promise<void>;
}

/**
 * Runs in the primary: forks the workers (each re-runs this process's script and arguments, and
 * sees cluster.isWorker), restarts any that dies, and stops them all on SIGINT/SIGTERM, then exits.
 */
export function runPrimary(opts: PrimaryOptions): Primary {
  if (!cluster.isPrimary) throw new Error('runPrimary: call it in the primary process only');
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const shutdownTimeoutMs = opts.shutdownTimeoutMs ?? 10_000;
  const slots: (Worker | undefined)[] = new Array(opts.workers).fill(undefined);
  const startedAt = new Map<Worker, number>();
  const fastDeaths = new Array<number>(opts.workers).fill(0);
  const listening = new Set<number>();
  let announced = false;
  let stopping: Promise<void> | undefined;

  const fork = (slot: number): void => {
    const w = cluster.fork({ MEDGYM_WORKER_INDEX: String(slot) });
    slots[slot] = w;
    startedAt.set(w, Date.now());
    w.on('listening', (addr: { address: string | null; port: number }) => {
      fastDeaths[slot] = 0;
      log(`medgym serve-env: worker ${slot} pid ${w.process.pid} listening`);
      listening.add(slot);
      if (!announced && listening.size === opts.workers) {
        announced = true;
        opts.onListening?.({ address: addr.address ?? '127.0.0.1', port: addr.port });
      }
    });
    w.on('exit', (code, signal) => {
      if (slots[slot] === w) slots[slot] = undefined;
      if (stopping) return;
      const lived = Date.now() - (startedAt.get(w) ?? 0);
      startedAt.delete(w);
      // A worker that dies right after starting (a bad flag, a port in use) would die again at once:
      // back off, and give up after 5 such deaths in a row rather than spin.
      fastDeaths[slot] = lived < 2000 ? fastDeaths[slot] + 1 : 0;
      if (fastDeaths[slot] >= 5) {
        log(`medgym serve-env: worker ${slot} died ${fastDeaths[slot]} times right after starting; giving up`);
        void primary.stop().then(() => process.exit(1));
        return;
      }
      const delay = fastDeaths[slot] === 0 ? 0 : Math.min(5000, 250 * 2 ** fastDeaths[slot]);
      log(`medgym serve-env: worker ${slot} pid ${w.process.pid} died (${signal ?? `code ${code}`}); restarting${delay ? ` in ${delay} ms` : ''}`);
      setTimeout(() => {
        if (!stopping) fork(slot);
      }, delay);
    });
  };

  const primary: Primary = {
    pids: () => slots.flatMap((w) => (w?.process.pid !== undefined ? [w.process.pid] : [])),
    stop() {
      stopping ??= Promise.all(
        slots.map(
          (w) =>
            new Promise<void>((resolve) => {
              if (!w || w.isDead()) return resolve();
              const kill = setTimeout(() => w.process.kill('SIGKILL'), shutdownTimeoutMs);
              w.once('exit', () => {
                clearTimeout(kill);
                resolve();
              });
              // The IPC channel may already be gone (the worker is exiting on its own): then it exits anyway.
              if (w.isConnected()) w.send(SHUTDOWN_MESSAGE, (err: Error | null) => err && w.process.kill('SIGTERM'));
              else w.process.kill('SIGTERM');
            }),
        ),
      ).then(() => undefined);
      return stopping;
    },
  };

  relayWorkerCalls(() => slots);
  for (let k = 0; k < opts.workers; k++) fork(k);
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    log(`${signal}: stopping ${opts.workers} workers`);
    void primary.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return primary;
}

/**
 * Runs in a worker: calls `stop` when the primary asks (SHUTDOWN_MESSAGE) or goes away (its IPC
 * channel closes, e.g. it was SIGKILLed), so that no orphan worker keeps the port.
 */
export function onWorkerShutdown(stop: (reason: string) => void): void {
  process.on('message', (m: unknown) => {
    if (m === SHUTDOWN_MESSAGE) stop('shutdown requested by the primary');
  });
  process.on('disconnect', () => stop('primary gone'));
}

/** This worker's index (0..N-1, stable across restarts), or 0 outside a cluster. */
export function workerIndex(): number {
  const v = Number(process.env.MEDGYM_WORKER_INDEX);
  return cluster.isWorker && Number.isSafeInteger(v) ? v : 0;
}
