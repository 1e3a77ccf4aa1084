// GET /metrics: the env server's counters in Prometheus' text exposition format (version 0.0.4),
// written by hand (a handful of series needs no client library). Numbers are this process's: with
// --workers N each worker keeps and answers its own (see docs/bridges.md).

/** Upper bounds (seconds) of the request-duration histogram; +Inf is implied. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export type TimedRoute = 'reset' | 'step';
export type Transport = 'http' | 'ws';

class Histogram {
  readonly counts = new Array<number>(DURATION_BUCKETS.length).fill(0);
  count = 0;
  sum = 0;

  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) if (seconds <= DURATION_BUCKETS[i]) this.counts[i]++;
  }
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
    if (!h) this.durations.set(k, (h = new Histogram()));
    h.observe(seconds);
  }

  /** The exposition text (Content-Type: text/plain; version=0.0.4). */
  render(): string {
    const out: string[] = [];
    const head = (name: string, type: string, help: string): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    head('medgym_sessions_active', 'gauge', 'Live sessions (HTTP episode_ids and WebSockets) in this process.');
    out.push(`medgym_sessions_active ${this.gauges.active()}`);
    head('medgym_sessions_max', 'gauge', 'Session cap of this process (--max-sessions).');
    out.push(`medgym_sessions_max ${this.gauges.max}`);
    head('medgym_resets_total', 'counter', 'Resets answered (episodes started), HTTP and WebSocket.');
    out.push(`medgym_resets_total ${this.resets}`);
    head('medgym_steps_total', 'counter', 'Steps answered, HTTP and WebSocket.');
    out.push(`medgym_steps_total ${this.steps}`);
    head('medgym_errors_total', 'counter', 'Error answers (HTTP 4xx/5xx and WebSocket error frames) by status and code.');
    for (const [k, n] of [...this.errors].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const [status, code] = k.split(' ');
      out.push(`medgym_errors_total{code="${label(code)}",status="${label(status)}"} ${n}`);
    }
    head('medgym_sessions_evicted_total', 'counter', 'Sessions closed after --idle-timeout untouched.');
    out.push(`medgym_sessions_evicted_total ${this.evicted}`);
    head('medgym_request_duration_seconds', 'histogram', 'Duration of reset and step requests (HTTP: the whole request; WebSocket: handling one message).');
    for (const route of ['reset', 'step'] as const) {
      for (const transport of ['http', 'ws'] as const) {
        const h = this.durations.get(`${route} ${transport}`) ?? new Histogram();
        const l = `route="${route}",transport="${transport}"`;
        for (const [i, le] of DURATION_BUCKETS.entries()) out.push(`medgym_request_duration_seconds_bucket{${l},le="${le}"} ${h.counts[i]}`);
        out.push(`medgym_request_duration_seconds_bucket{${l},le="+Inf"} ${h.count}`);
        out.push(`medgym_request_duration_seconds_sum{${l}} ${h.sum}`);
        out.push(`medgym_request_duration_seconds_count{${l}} ${h.count}`);
      }
    }
    return out.join('\n') + '\n';
  }
}
