// Global L2 gradient norm and clipping, torch.nn.utils.clip_grad_norm_ semantics (norm_type 2).
import { nativeFunctions } from './runtime';

export interface GradNormArgs {
  /** Gradient arrays (each non-empty); the norm runs over all of them, accumulated in double. */
  grads: Float32Array[];
  /** Run the plain scalar reference grad_clip_ref (one sequential double sum); default false. */
  reference?: boolean;
}
export interface GradClipArgs extends GradNormArgs {
  /** Scale the gradients by maxNorm / (norm + 1e-6) when that is < 1 (> 0). */
  maxNorm: number;
}
export interface GradClipResult {
  /** Global L2 norm before clipping (NaN or Infinity when a gradient is not finite). */
  norm: number;
  /** Factor the gradients were multiplied by (1 when not clipped). */
  scale: number;
  /** True when the gradients were scaled. */
  clipped: boolean;
  /** False when the norm is not finite: nothing was scaled; the trainer should skip the step. */
  finite: boolean;
}

interface GradClipNative {
  gradNorm(a: GradNormArgs): number;
  gradNormAsync(a: GradNormArgs): Promise<number>;
  gradClip(a: GradClipArgs): GradClipResult;
  gradClipAsync(a: GradClipArgs): Promise<GradClipResult>;
}
const native = () => nativeFunctions<GradClipNative>();

/** Global L2 norm over all arrays (deterministic: fixed blocks summed in order, any thread count). */
export function gradNorm(args: GradNormArgs): number {
  return native().gradNorm(args);
}
export async function gradNormAsync(args: GradNormArgs): Promise<number> {
  return native().gradNormAsync(args);
}
/** Clips the gradients in place to global norm maxNorm; returns the norm before clipping. */
export function gradClip(args: GradClipArgs): GradClipResult {
  return native().gradClip(args);
}
export async function gradClipAsync(args: GradClipArgs): Promise<GradClipResult> {
  return native().gradClipAsync(args);
}
