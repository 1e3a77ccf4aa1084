// `medgym doctor`: what this installation can do, and what to fix when it cannot.
import * as os from 'os';
import { addonCandidates, loadNative } from '../native/loader';
import type { NativeInfo } from '../native/types';
import { probeCuda } from '../policy/device';
import { ARCHITECTURES } from '../models/architectures';

export interface DoctorReport {
  ok: boolean;
  lines: string[];
}

function sharpVersion(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sharp = require('sharp') as { versions: Record<string, string> };
    return `${sharp.versions.sharp} (libvips ${sharp.versions.vips})`;
  } catch (err) {
    return `not available (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
  }
}

function cudaLine(info: NativeInfo): string {
  if (!info.cudaCompiled) return 'not compiled (no nvcc at build time; CPU backend only)';
  const rt = info.cudaRuntimeVersion ?? 0;
  const version = `${Math.floor(rt / 1000)}.${Math.floor((rt % 1000) / 10)}, GEMM: ${info.cudaGemm ?? 'unknown'}`;
  if (info.cudaDevices.length === 0) return `compiled (runtime ${version}), no usable device: ${info.cudaUnavailableReason ?? 'unknown'}`;
  const devices = info.cudaDevices.map((d) => `${d.name} (sm_${d.computeCapability.replace('.', '')}, ${(d.totalMemory / 2 ** 30).toFixed(0)} GiB)`);
  return `compiled (runtime ${version}), devices: ${devices.join(', ')}`;
}

/** Whether NativePolicy can run with device 'cuda' (what 'auto' would pick). */
function policyGpuLine(): string {
  const p = probeCuda();
  return p.usable ? `yes, ${p.name} (device 'cuda' or 'auto'; dtype 'fp32' or 'bf16')` : `no (device 'auto' runs on the CPU): ${p.reason}`;
}

export function doctor(): DoctorReport {
  const lines: string[] = [];
  lines.push(`node ${process.version} on ${os.platform()}-${os.arch()}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'})`);
  let ok = true;
  try {
    const native = loadNative();
    const info = native.info();
    const features = Object.entries(info.cpuFeatures)
      .filter(([, has]) => has)
      .map(([name]) => name);
    lines.push(`addon: found (medgym ${info.version}, N-API ${info.napiVersion}, ${info.compiler})`);
    lines.push(`cpu features: ${features.join(' ') || 'none detected'}; kernels use the ${info.simd} path`);
    lines.push(`threads: ${info.threads} (hardware ${info.hardwareThreads}; set MEDGYM_NUM_THREADS to change)`);
    lines.push(`cuda: ${cudaLine(info)}`);
    lines.push(`policy on the GPU: ${policyGpuLine()}`);
  } catch (err) {
    ok = false;
    lines.push(`addon: NOT FOUND (tried ${addonCandidates().join(', ')})`);
    lines.push(String(err instanceof Error ? err.message : err));
  }
  lines.push(`sharp: ${sharpVersion()}`);
  lines.push('architectures:');
  for (const a of ARCHITECTURES) lines.push(`  ${a.modelType}${a.hfClass ? ` (${a.hfClass})` : ''}: ${a.support}`);
  return { ok, lines };
}
