// Atomic file writes: write a temp file beside the target, fsync it, rename over the target, fsync
// the directory. A reader (or a run resumed after SIGKILL) sees the old file or the new one, never a
// torn one.
import * as fs from 'fs';
import * as path from 'path';

function tempPath(target: string): string {
  const rand = Math.floor(Math.random() * 0xffffffff).toString(16);
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${rand}.tmp`);
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some platforms/filesystems cannot fsync a directory; the rename is still atomic there.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes `chunks` (in order) to `target` atomically. */
export function writeFileAtomicSync(target: string, chunks: Uint8Array | string | (Uint8Array | string)[]): void {
  const tmp = tempPath(target);
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    for (const chunk of Array.isArray(chunks) ? chunks : [chunks]) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      let off = 0;
      while (off < buf.byteLength) off += fs.writeSync(fd, buf, off, buf.byteLength - off);
    }
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(path.dirname(target));
}

/** Async twin of writeFileAtomicSync (same guarantees). */
export async function writeFileAtomic(target: string, chunks: Uint8Array | string | (Uint8Array | string)[]): Promise<void> {
  const tmp = tempPath(target);
  const handle = await fs.promises.open(tmp, 'w', 0o644);
  try {
    for (const chunk of Array.isArray(chunks) ? chunks : [chunks]) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      let off = 0;
      while (off < buf.byteLength) off += (await handle.write(buf, off, buf.byteLength - off)).bytesWritten;
    }
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fs.promises.rename(tmp, target);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  fsyncDir(path.dirname(target));
}
