// Progress: a cli-progress bar with throughput and ETA on a TTY, a log line every N steps otherwise.
import { SingleBar, Presets } from 'cli-progress';

export interface Progress {
  start(name: string, total: number, at: number): void;
  update(at: number, fields: Record<string, string>): void;
  stop(): void;
  log(line: string): void;
}

export function makeProgress(enabled: boolean, logEvery: number, out: (line: string) => void = (l) => process.stderr.write(l + '\n')): Progress {
  const tty = enabled && Boolean(process.stderr.isTTY);
  let bar: SingleBar | undefined;
  let name = '';
  let total = 0;
  let t0 = 0;
  let at0 = 0;
  return {
    start(n, tot, at) {
      name = n;
      total = tot;
      t0 = Date.now();
      at0 = at;
      if (tty) {
        bar = new SingleBar({ format: `${n.padEnd(9)} {bar} {value}/{total} | {rate}/s | ETA {eta_formatted} | {info}`, hideCursor: true, etaBuffer: 20 }, Presets.shades_classic);
        bar.start(tot, at, { info: '', rate: '-' });
      } else out(`[${n}] start at ${at}/${tot}`);
    },
    update(at, fields) {
      const dt = (Date.now() - t0) / 1000;
      const rate = dt > 0 ? ((at - at0) / dt).toFixed(2) : '-';
      const info = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join(' ');
      if (bar) bar.update(at, { info, rate });
      else if (at === total || at % logEvery === 0) {
        const eta = at > at0 ? ((total - at) * dt) / (at - at0) : NaN;
        out(`[${name}] ${at}/${total} ${rate}/s eta ${Number.isFinite(eta) ? eta.toFixed(0) + 's' : '-'} ${info}`);
      }
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
    log(line) {
      if (bar) bar.stop();
      out(line);
      bar = undefined;
    },
  };
}
