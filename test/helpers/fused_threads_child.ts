// Child process for the thread-count test: the pool size comes from MEDGYM_NUM_THREADS at process
// start. Prints the forward and backward results of one case (argv[2]: FusedCase & {seed}) as JSON,
// for the rows and the vocab split.
import { fusedLinearLogprob, fusedLinearLogprobBackward, nativeInfo } from '../../src/native';
import { makeCase } from './ref_fused_linear_logprob';

const c = JSON.parse(process.argv[2]);
// One result per split, so that one child process covers both schedules.
const out: Record<string, unknown> = { threads: nativeInfo().threads };
for (const split of ['rows', 'vocab'] as const) {
  const x = { ...makeCase(c, c.seed), split };
  const f = fusedLinearLogprob(x);
  const g = fusedLinearLogprobBackward({ ...x, lse: f.lse, entropy: f.entropy });
  out[split] = { logp: f.logp, entropy: f.entropy, dh: g.dh, dW: g.dW };
}
console.log(JSON.stringify(out, (_k, v) => (v instanceof Float32Array ? Array.from(v) : v)));
