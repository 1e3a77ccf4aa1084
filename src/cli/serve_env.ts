// `medgym serve-env`: the env server (src/server) on a port until SIGINT/SIGTERM; with --workers N
// a primary process forks N workers on the same port (src/server/cluster.ts).
import cluster from 'node:cluster';
import { onWorkerShutdown, runPrimary, type Primary } from '../server/cluster';
import { parseDatasetFlag, type DatasetDecl } from '../server/datasets';
import { createEnvServer, DEFAULT_ENV, type EnvServer } from '../server/env_server';
import { stopOnSignals } from './stop_on_signals';

export interface ServeEnvFlags {
  host?: string;
  port?: string;
  token?: string;
  env?: string;
  maxSessions?: string;
  idleTimeout?: string;
  workers?: string;
  log?: boolean;
  images?: string;
  /** NAME=PATH[:KIND], repeatable. */
  dataset?: string[];
}

const int = (v: string | undefined, name: string, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`Expected an integer >= ${min} for --${name} but received ${JSON.stringify(v)}`);
  return n;
};

const urlLine = (address: string, f: ServeEnvFlags, workers: number): string =>
  `medgym env server on ${address} (env ${f.env ?? DEFAULT_ENV}${workers > 1 ? `, ${workers} workers` : ''}${f.token || process.env.MEDGYM_TOKEN ? ', bearer token required' : ''}); WebSocket ${address.replace(/^http/, 'ws')}/ws`;

/**
 * Starts the server; resolves with it once listening (the process then lives until a signal). With
 * --workers > 1 the primary resolves with the worker pool and each worker with its own server.
 */
export async function serveEnvCommand(f: ServeEnvFlags): Promise<EnvServer | Primary> {
  const port = int(f.port, 'port', 0) ?? 8000;
  if (port > 65535) throw new RangeError(`Expected a port <= 65535 for --port but received ${port}`);
  const idle = int(f.idleTimeout, 'idle-timeout', 1);
  const workers = int(f.workers, 'workers', 1) ?? 1;
  if (f.images !== undefined && f.images !== 'inline' && f.images !== 'blobs') throw new RangeError(`Expected "inline" or "blobs" for --images but received ${JSON.stringify(f.images)}`);
  const images = f.images as 'inline' | 'blobs' | undefined;
  const datasets: Record<string, DatasetDecl> = {};
  for (const v of f.dataset ?? []) {
    const [name, decl] = parseDatasetFlag(v);
    if (Object.hasOwn(datasets, name)) throw new RangeError(`--dataset ${name}: declared twice`);
    datasets[name] = decl;
  }
  const options = {
    host: f.host,
    token: f.token ?? (process.env.MEDGYM_TOKEN || undefined),
    env: f.env ?? DEFAULT_ENV,
    maxSessions: int(f.maxSessions, 'max-sessions', 1),
    idleTimeoutMs: idle === undefined ? undefined : idle * 1000,
    logger: f.log ?? false,
    workers,
    images,
    datasets,
    datasetsFlag: '--dataset',
  };

  if (workers > 1 && cluster.isPrimary) {
    // Fail on a bad flag here, once, rather than in N workers that the primary would keep restarting.
    // Datasets too: opening them (ready()) fails on a bad one before any worker starts.
    const probe = createEnvServer(options);
    try {
      await probe.app.ready();
    } finally {
      await probe.close();
    }
    return runPrimary({
      workers,
      onListening: ({ address, port: p }) => console.log(urlLine(`http://${address.includes(':') ? `[${address}]` : address}:${p}`, f, workers)),
    });
  }

  const server = createEnvServer(options);
  let address: string;
  try {
    address = await server.app.listen({ host: server.host, port }); // opens the datasets first
  } catch (err) {
    await server.close().catch(() => undefined);
    throw err;
  }
  if (!cluster.isWorker) console.log(urlLine(address, f, 1));
  const stop = stopOnSignals(() => server.close(), (reason) => (cluster.isWorker ? undefined : `${reason}: closing sessions and stopping`));
  if (cluster.isWorker) onWorkerShutdown(stop);
  return server;
}
