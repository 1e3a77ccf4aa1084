// Child process of fused_linear_logprob.bench.ts: the peak RSS increase of the first fused
// forward+backward in a fresh process (in the bench process, heap freed by earlier calls would be
// reused and hide it). Argument: JSON {N, d, V, tau}. Prints JSON {rssDelta} (bytes; null if unsupported).
import * as fs from 'fs';
import { fusedLinearLogprob, fusedLinearLogprobBackward } from '../src/native';
import { Rng } from '../test/helpers/random';

const statusBytes = (field: string): number => {
  const m = new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
};

const { N, d, V, tau } = JSON.parse(process.argv[2]) as { N: number; d: number; V: number; tau: number };
const rng = new Rng(V);
const h = rng.f32(N * d), W = rng.f32(V * d, 0.05), targets = rng.i32(N, 0, V);
const dlogp = rng.f32(N), dentropy = rng.f32(N);
const logp = new Float32Array(N), entropy = new Float32Array(N), lse = new Float32Array(N);
const dh = new Float32Array(N * d).fill(0), dW = new Float32Array(V * d).fill(0); // touched: resident before
let rssDelta: number | null = null;
try {
  fs.writeFileSync('/proc/self/clear_refs', '5');
  const before = statusBytes('VmRSS');
  fusedLinearLogprob({ h, W, targets, N, d, V, temperature: tau, logp, entropy, lse });
  fusedLinearLogprobBackward({ h, W, targets, lse, entropy, dlogp, dentropy, N, d, V, temperature: tau, dh, dW });
  rssDelta = statusBytes('VmHWM') - before;
} catch {
  rssDelta = null;
}
console.log(JSON.stringify({ rssDelta }));
