// Where the native policy runs: `device` 'cpu' | 'cuda' | 'auto' and `dtype` 'fp32' | 'bf16',
// validated here at the boundary, and the addon's CUDA probe behind 'auto', `medgym doctor` and the
// device line of `medgym train` (docs/cuda.md, "The policy on the GPU").
import { nativePolicyFunctions, type RawCudaProbe } from '../native/policy';
import type { DeviceOptions, PolicyDeviceInfo, PolicyDeviceRequest, PolicyDtype } from './types';

const DEVICES: readonly string[] = ['cpu', 'cuda', 'auto'];
const DTYPES: readonly string[] = ['fp32', 'bf16'];

let probed: RawCudaProbe | null = null;

/**
 * Can this process run the policy on a GPU, and if not, why (the addon was built without CUDA, no
 * driver, no device, a device older than sm_80, ...). Probed once per process.
 */
export function probeCuda(): RawCudaProbe {
  if (!probed) probed = nativePolicyFunctions().policyCudaProbe();
  return { ...probed };
}

/** The device a create/load runs on, before the model exists (`name` comes from the addon afterwards). */
export type ResolvedDevice = Omit<PolicyDeviceInfo, 'name'>;

const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : String(v));

/**
 * Validates `{device, dtype}` and picks the device. RangeError for an unknown value or 'cpu' with
 * 'bf16'; Error (with the runtime's reason) for 'cuda' when no GPU can run the policy. 'auto' never
 * throws for want of a GPU: it falls back to the CPU (fp32) and says why in `reason`.
 */
export function resolveDevice(options: DeviceOptions = {}): ResolvedDevice {
  if (!options || typeof options !== 'object') throw new TypeError(`Expected an options object but received ${show(options)}`);
  const requested = (options.device ?? 'cpu') as PolicyDeviceRequest;
  if (!DEVICES.includes(requested)) throw new RangeError(`Expected 'cpu', 'cuda' or 'auto' for \`device\` but received ${show(requested)}`);
  const dtype = (options.dtype ?? 'fp32') as PolicyDtype;
  if (!DTYPES.includes(dtype)) throw new RangeError(`Expected 'fp32' or 'bf16' for \`dtype\` but received ${show(dtype)}`);
  if (requested === 'cpu') {
    if (dtype === 'bf16') throw new RangeError("`dtype` 'bf16' needs `device` 'cuda' or 'auto' (the CPU policy runs in fp32)");
    return { device: 'cpu', dtype, requested, reason: 'requested' };
  }
  const probe = probeCuda();
  if (requested === 'cuda') {
    if (!probe.usable) throw new Error(`device 'cuda': ${probe.reason}`);
    return { device: 'cuda', dtype, requested, reason: 'requested' };
  }
  if (probe.usable) return { device: 'cuda', dtype, requested, reason: `a CUDA device can run it (${probe.name})` };
  const note = dtype === 'bf16' ? "; 'bf16' needs the GPU, so fp32" : '';
  return { device: 'cpu', dtype: 'fp32', requested, reason: `no usable CUDA device: ${probe.reason}${note}` };
}

/** One line for logs, e.g. "cuda:0 NVIDIA H100 80GB HBM3 (sm_90), bf16 (device 'auto': a CUDA device can run it ...)". */
export function describeDevice(info: PolicyDeviceInfo): string {
  const name = info.device === 'cpu' ? 'cpu (fp32)' : info.name;
  return info.reason === 'requested' ? `${name} (device '${info.requested}')` : `${name} (device '${info.requested}': ${info.reason})`;
}
