// Child process for the thread-count test: the pool size comes from MEDGYM_NUM_THREADS at process
// start. Prints the forward and backward results of one case (argv[2]: FusedCase & {seed}) as JSON.
import { fusedLinearLogprob, fusedLinearLogprobBackward, nativeInfo } from '../../src/native';
import { makeCase } from './ref_fused_linear_logprob';

const c = JSON.parse(process.argv[2]);
const x = { ...makeCase(c, c.seed), split: c.split };
const f = fusedLinearLogprob(x);
const g = fusedLinearLogprobBackward({ ...x, lse: f.lse, entropy: f.entropy });
const out = { threads: nativeInfo().threads, logp: f.logp, entropy: f.entropy, dh: g.dh, dW: g.dW };
console.log(JSON.stringify(out, (_k, v) => (v instanceof Float32Array ? Array.from(v) : v)));
