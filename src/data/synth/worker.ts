// Worker side of the generator pool: generates items and transfers their pixels back.
import { parentPort } from 'worker_threads';
import { generateItem, type SynthOptions } from './generator';

parentPort?.on('message', (m: { id: number; opts: SynthOptions; index: number }) => {
  try {
    const item = generateItem(m.opts, m.index);
    parentPort!.postMessage({ id: m.id, item }, [item.image.data.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
  }
});
