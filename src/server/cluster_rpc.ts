// Calls between the workers of `medgym serve-env --workers N`, relayed by the primary over
// node:cluster's IPC channels (workers cannot reach each other directly). Two uses: an HTTP request
// for a session that lives in another worker is forwarded to it (src/server/affinity.ts), and
// GET /metrics gathers every worker's counters to sum them (src/server/metrics.ts).
//
// A worker calls `to` one worker (by index) or 'all'; the primary sends the call on, collects the
// answers and sends them back ('all': one answer per live worker, in worker order, those that did
// not answer within the timeout left out). Payloads are JSON (structured clone over IPC).
import cluster, { type Worker } from 'node:cluster';

const REQ = 'medgym:rpc-req';
const RES = 'medgym:rpc-res';

export type RpcKind = 'forward' | 'metrics' | 'blob';

interface RpcRequest {
  t: typeof REQ;
  id: number;
  kind: RpcKind;
  to: number | 'all';
  payload: unknown;
}

interface RpcResponse {
  t: typeof RES;
  id: number;
  ok: boolean;
  payload?: unknown;
  error?: string;
}

const isRequest = (m: unknown): m is RpcRequest => typeof m === 'object' && m !== null && (m as RpcRequest).t === REQ;
const isResponse = (m: unknown): m is RpcResponse => typeof m === 'object' && m !== null && (m as RpcResponse).t === RES;

/** A call whose target worker is not running (dead, restarting) or did not answer in time. */
export class WorkerUnavailableError extends Error {
  override readonly name = 'WorkerUnavailableError';
}

/**
 * Primary side: relays calls between workers. `slots[k]` is worker k (undefined while it restarts).
 * Returns a detach function.
 */
export function relayWorkerCalls(slots: () => readonly (Worker | undefined)[], timeoutMs = 5000): () => void {
  let nextId = 1;
  const pending = new Map<number, { origin: Worker; originId: number; all: boolean; answers: Map<number, RpcResponse>; left: number; timer: NodeJS.Timeout }>();
  const finish = (rid: number): void => {
    const p = pending.get(rid);
    if (!p) return;
    pending.delete(rid);
    clearTimeout(p.timer);
    let reply: RpcResponse;
    if (p.all) {
      const payloads = [...p.answers.entries()].sort(([a], [b]) => a - b).filter(([, r]) => r.ok).map(([, r]) => r.payload);
      reply = { t: RES, id: p.originId, ok: true, payload: payloads };
    } else {
      const only = [...p.answers.values()][0];
      reply = only ?? { t: RES, id: p.originId, ok: false, error: 'the worker did not answer in time' };
      reply = { ...reply, id: p.originId };
    }
    if (p.origin.isConnected()) p.origin.send(reply);
  };
  const onMessage = (origin: Worker, m: unknown): void => {
    if (isRequest(m)) {
      const all = slots();
      const targets: [number, Worker][] =
        m.to === 'all' ? all.flatMap((w, k) => (w && w.isConnected() ? [[k, w] as [number, Worker]] : [])) : all[m.to]?.isConnected() ? [[m.to, all[m.to]!]] : [];
      if (targets.length === 0) {
        origin.send({ t: RES, id: m.id, ok: false, error: `worker ${String(m.to)} is not running (it died and is being restarted)` } satisfies RpcResponse);
        return;
      }
      const rid = nextId++;
      const timer = setTimeout(() => finish(rid), timeoutMs);
      timer.unref();
      pending.set(rid, { origin, originId: m.id, all: m.to === 'all', answers: new Map(), left: targets.length, timer });
      for (const [k, w] of targets) {
        w.send({ ...m, id: rid, to: k } satisfies RpcRequest, (err: Error | null) => {
          if (err) answer(rid, k, { t: RES, id: rid, ok: false, error: err.message });
        });
      }
      return;
    }
    if (isResponse(m)) {
      const k = slots().indexOf(origin);
      answer(m.id, k, m);
    }
  };
  const answer = (rid: number, k: number, r: RpcResponse): void => {
    const p = pending.get(rid);
    if (!p || p.answers.has(k)) return;
    p.answers.set(k, r);
    if (--p.left === 0) finish(rid);
  };
  cluster.on('message', onMessage);
  return () => {
    cluster.off('message', onMessage);
    for (const rid of [...pending.keys()]) finish(rid);
  };
}

export type RpcHandlers = Partial<Record<RpcKind, (payload: unknown) => Promise<unknown> | unknown>>;

export interface WorkerRpc {
  /** Calls worker `to` (or every worker, this one included) through the primary. */
  call(to: number | 'all', kind: RpcKind, payload: unknown, timeoutMs?: number): Promise<unknown>;
  /** Stops answering and rejects pending calls. */
  close(): void;
}

/** Worker side: answers the primary's calls with `handlers` and makes calls of its own. */
export function workerRpc(handlers: RpcHandlers): WorkerRpc {
  if (!cluster.isWorker || !process.send) throw new Error('workerRpc: call it in a cluster worker only');
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  const send = (m: RpcRequest | RpcResponse): void => {
    if (process.connected) process.send!(m);
  };
  const onMessage = (m: unknown): void => {
    if (isRequest(m)) {
      const h = handlers[m.kind];
      void (async () => {
        try {
          if (!h) throw new Error(`no handler for ${m.kind}`);
          send({ t: RES, id: m.id, ok: true, payload: await h(m.payload) });
        } catch (err) {
          send({ t: RES, id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) });
        }
      })();
    } else if (isResponse(m)) {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.payload);
      else p.reject(new WorkerUnavailableError(m.error ?? 'worker call failed'));
    }
  };
  process.on('message', onMessage);
  return {
    call(to, kind, payload, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new WorkerUnavailableError(`worker ${String(to)} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        timer.unref();
        pending.set(id, { resolve, reject, timer });
        send({ t: REQ, id, kind, to, payload });
      });
    },
    close() {
      process.off('message', onMessage);
      for (const [id, p] of pending) {
        clearTimeout(p.timer);
        p.reject(new WorkerUnavailableError('closing'));
        pending.delete(id);
      }
    },
  };
}
