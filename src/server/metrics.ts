// GET /metrics: the env server's counters in Prometheus' text exposition format (version 0.0.4),
// written by hand (a handful of series needs no client library). Each process counts its own; with
// --workers N the worker answering GET /metrics gathers every worker's snapshot and sums them
// (mergeSnapshots), as prom-client's cluster registry does.

/** Upper bounds (seconds) of the request-duration histogram; +Inf is implied. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export type TimedRoute = 'reset' | 'step';
export type Transport = 'http' | 'ws';

interface Histogram {
  counts: number[];
  count: number;
  sum: number;
}

const newHistogram = (): Histogram => ({ counts: new Array<number>(DURATION_BUCKETS.length).fill(0), count: 0, sum: 0 });

/** A process's counters as plain JSON: what one worker sends another over IPC. */
export interface MetricsSnapshot {
  active: number;
  max: number;
  resets: number;
  steps: number;
  evicted: number;
  /** `${status} ${code}` → count. */
  errors: Record<string, number>;
  /** `${route} ${transport}` → histogram. */
  durations: Record<string, Histogram>;
  /** Processes summed into this snapshot. */
  processes: number;
}

/** The sum of several processes' snapshots (gauges too: sessions and caps add up across workers). */
export function mergeSnapshots(snaps: readonly MetricsSnapshot[]): MetricsSnapshot {
  const out: MetricsSnapshot = { active: 0, max: 0, resets: 0, steps: 0, evicted: 0, errors: {}, durations: {}, processes: 0 };
  for (const s of snaps) {
    out.active += s.active;
    out.max += s.max;
    out.resets += s.resets;
    out.steps += s.steps;
    out.evicted += s.evicted;
    out.processes += s.processes;
    for (const [k, n] of Object.entries(s.errors)) out.errors[k] = (out.errors[k] ?? 0) + n;
    for (const [k, h] of Object.entries(s.durations)) {
      const o = (out.durations[k] ??= newHistogram());
      o.count += h.count;
      o.sum += h.sum;
      h.counts.forEach((c, i) => (o.counts[i] += c));
    }
  }
  return out;
}

/** Label values are ours (codes, route names, small ints), but escape anyway so that the exposition stays parseable. */
const label = (v: string | number): string => String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export class ServerMetrics {
  resets = 0;
  steps = 0;
  evicted = 0;
  /** Keyed by `${status} ${code}`. */
  private readonly errors = new Map<string, number>();
  /** Keyed by `${route} ${transport}`. */
  private readonly durations = new Map<string, Histogram>();

  constructor(
    private readonly gauges: { active: () => number; max: number },
  ) {}

  /** An error answer (HTTP 4xx/5xx or a WebSocket error frame) with its status and code. */
  error(status: number, code: string): void {
    const k = `${status} ${code}`;
    this.errors.set(k, (this.errors.get(k) ?? 0) + 1);
  }

  /** How long a reset or step took, seconds (HTTP: whole request; WebSocket: the message's handling). */
  observe(route: TimedRoute, transport: Transport, seconds: number): void {
    const k = `${route} ${transport}`;
    let h = this.durations.get(k);
    if (!h) this.durations.set(k, (h = newHistogram()));
    h.count++;
    h.sum += seconds;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) if (seconds <= DURATION_BUCKETS[i]) h.counts[i]++;
  }

  /** This process's counters (a copy). */
  snapshot(): MetricsSnapshot {
    return {
      active: this.gauges.active(),
      max: this.gauges.max,
      resets: this.resets,
      steps: this.steps,
      evicted: this.evicted,
      errors: Object.fromEntries(this.errors),
      durations: Object.fromEntries([...this.durations].map(([k, h]) => [k, { counts: [...h.counts], count: h.count, sum: h.sum }])),
      processes: 1,
    };
  }

  /** This process's exposition text (Content-Type: text/plain; version=0.0.4). */
  render(): string {
    return renderSnapshot(this.snapshot());
  }
}

/** The exposition text of a snapshot (one process's, or several merged). */
export function renderSnapshot(snap: MetricsSnapshot): string {
  const out: string[] = [];
  const head = (name: string, type: string, help: string): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };
  head('medgym_processes', 'gauge', 'Server processes whose counters are summed here (--workers; a worker that did not answer in time is left out).');
  out.push(`medgym_processes ${snap.processes}`);
  head('medgym_sessions_active', 'gauge', 'Live sessions (HTTP episode_ids and WebSockets), all workers.');
  out.push(`medgym_sessions_active ${snap.active}`);
  head('medgym_sessions_max', 'gauge', 'Session cap (--max-sessions per worker, times the workers).');
  out.push(`medgym_sessions_max ${snap.max}`);
  head('medgym_resets_total', 'counter', 'Resets answered (episodes started), HTTP and WebSocket.');
  out.push(`medgym_resets_total ${snap.resets}`);
  head('medgym_steps_total', 'counter', 'Steps answered, HTTP and WebSocket.');
  out.push(`medgym_steps_total ${snap.steps}`);
  head('medgym_errors_total', 'counter', 'Error answers (HTTP 4xx/5xx and WebSocket error frames) by status and code.');
  for (const [k, n] of Object.entries(snap.errors).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const [status, code] = k.split(' ');
    out.push(`medgym_errors_total{code="${label(code)}",status="${label(status)}"} ${n}`);
  }
  head('medgym_sessions_evicted_total', 'counter', 'Sessions closed after --idle-timeout untouched.');
  out.push(`medgym_sessions_evicted_total ${snap.evicted}`);
  head('medgym_request_duration_seconds', 'histogram', 'Duration of reset and step requests (HTTP: the whole request; WebSocket: handling one message).');
  for (const route of ['reset', 'step'] as const) {
    for (const transport of ['http', 'ws'] as const) {
      const h = snap.durations[`${route} ${transport}`] ?? newHistogram();
      const l = `route="${route}",transport="${transport}"`;
      for (const [i, le] of DURATION_BUCKETS.entries()) out.push(`medgym_request_duration_seconds_bucket{${l},le="${le}"} ${h.counts[i]}`);
      out.push(`medgym_request_duration_seconds_bucket{${l},le="+Inf"} ${h.count}`);
      out.push(`medgym_request_duration_seconds_sum{${l}} ${h.sum}`);
      out.push(`medgym_request_duration_seconds_count{${l}} ${h.count}`);
    }
  }
  return out.join('\n') + '\n';
}
