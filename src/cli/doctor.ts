// `medgym doctor`: what this installation can do, and what to fix when it cannot.
import * as os from 'os';
import { addonCandidates, loadNative } from '../native/loader';

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
    lines.push(`cuda: ${info.cudaCompiled ? 'compiled in' : 'not compiled (CPU backend only)'}`);
  } catch (err) {
    ok = false;
    lines.push(`addon: NOT FOUND (tried ${addonCandidates().join(', ')})`);
    lines.push(String(err instanceof Error ? err.message : err));
  }
  lines.push(`sharp: ${sharpVersion()}`);
  return { ok, lines };
}
