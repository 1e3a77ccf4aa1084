// AdamW step, torch.optim.AdamW semantics (amsgrad off), in place over a flat parameter array:
//   p *= 1 - lr*weightDecay;  m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g²;
//   p += -(lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps).
import { nativeFunctions } from './runtime';

export interface AdamWArgs {
  /** Parameters, updated in place (non-empty). */
  param: Float32Array;
  /** Gradient, same length as param. */
  grad: Float32Array;
  /** First moment, updated in place (start with zeros). */
  m: Float32Array;
  /** Second moment, updated in place (start with zeros). */
  v: Float32Array;
  /** Learning rate (finite, >= 0). */
  lr: number;
  /** 1-based step count, as torch's state['step'] after its increment (integer >= 1). */
  step: number;
  /** Default 0.9, in [0, 1). */
  beta1?: number;
  /** Default 0.999, in [0, 1). */
  beta2?: number;
  /** Added to sqrt(v_hat); default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 0.01 (torch's default). Pass 0 for biases/norms if desired. */
  weightDecay?: number;
  /** Run the plain scalar reference adamw_step_ref (double arithmetic, not torch's float32 order); default false. */
  reference?: boolean;
}

interface AdamWNative {
  adamw(a: AdamWArgs): void;
  adamwAsync(a: AdamWArgs): Promise<void>;
}
const native = () => nativeFunctions<AdamWNative>();

/** One AdamW step in place on param, m and v. */
export function adamw(args: AdamWArgs): void {
  native().adamw(args);
}
export async function adamwAsync(args: AdamWArgs): Promise<void> {
  await native().adamwAsync(args);
}
