// Datasets the operator declares at start (`medgym serve-env --dataset NAME=PATH[:KIND]`,
// createEnvServer({ datasets })) and sessions then name in a reset ({"dataset": "NAME"}, or
// "NAME:train" / "NAME:val" / "NAME:test" for one split). A client names only a declared NAME, never
// a path: the server opens each one once, at start, through the same code as `medgym train
// --dataset` (openRunItems), and every session shares it read-only.
import { ManifestDataset } from '../data/loaders/manifest';
import { DATASET_KINDS, type DatasetKind } from '../data/open';
import type { Dataset, Split } from '../data/types';
import { DatasetItems } from '../rollout';
import { DATASET_ENV_ID, parseTrainConfig } from '../train/config';
import { openRunItems } from '../train/data';
import { DATASET_NAME } from './wire';

export interface DatasetDecl {
  /** A file or folder as `medgym train --dataset` takes it. */
  path: string;
  /** As `medgym train --dataset-kind`; guessed from the path when omitted. */
  kind?: DatasetKind | string;
}

/** Checks names and kinds of `decls` (synchronously, before anything is opened); RangeError naming `flag`. */
export function checkDatasetDecls(decls: Record<string, DatasetDecl>, flag = 'datasets'): void {
  for (const [name, d] of Object.entries(decls)) {
    if (!DATASET_NAME.test(name) || name.length > 100) throw new RangeError(`${flag}: dataset name ${JSON.stringify(name)}: expected letters, digits, _ - and inner dots (at most 100)`);
    if (!d || typeof d.path !== 'string' || d.path === '') throw new RangeError(`${flag}: dataset ${name}: expected a path`);
    if (d.kind !== undefined && !(DATASET_KINDS as readonly string[]).includes(d.kind)) throw new RangeError(`${flag}: dataset ${name}: unknown kind ${JSON.stringify(d.kind)}; kinds: ${DATASET_KINDS.join(', ')}`);
  }
}

const SPLITS: readonly Split[] = ['train', 'val', 'test'];

/** Split `split` of `ds` as a dataset of its own: index i is the split's i-th item in file order. */
function splitView(ds: Dataset, split: Split, indices: readonly number[]): Dataset {
  return new ManifestDataset(
    `${ds.name}:${split}`,
    indices.map((index) => ({ id: String(index), index })),
    (r) => ds.get(r.index),
    () => split,
  );
}

/**
 * Opens every declared dataset as `medgym train --dataset PATH --dataset-kind KIND` does (bad rows
 * skipped, as there). NAME serves the whole opened dataset (index i is row i over all of its
 * splits); NAME:train, NAME:val and NAME:test (those not empty) serve one split each, the split
 * `medgym train --dataset PATH` makes with its default seed and fractions (the dataset's own split
 * where it has one, else the stable hash by item id), so NAME:test is the held-out set of such a run.
 */
export async function openDeclaredDatasets(decls: Record<string, DatasetDecl>, flag = 'datasets'): Promise<Map<string, Dataset>> {
  checkDatasetDecls(decls, flag);
  const out = new Map<string, Dataset>();
  for (const [name, d] of Object.entries(decls)) {
    try {
      const cfg = parseTrainConfig({ env: { id: DATASET_ENV_ID, dataset: { path: d.path, ...(d.kind ? { kind: d.kind } : {}) } } });
      const items = await openRunItems(cfg);
      const ds = items.envExtra.dataset;
      if (!ds) throw new Error('no dataset opened');
      if (ds.size === 0) throw new Error('no usable items');
      out.set(name, ds);
      if (!(items.source instanceof DatasetItems)) throw new Error('not opened as a dataset');
      for (const split of SPLITS) {
        const idx = items.source.splitIndices[split];
        if (idx.length) out.set(`${name}:${split}`, splitView(ds, split, idx));
      }
    } catch (err) {
      throw new RangeError(`${flag}: dataset ${name} (${d.path}): ${(err as Error).message}`);
    }
  }
  return out;
}

/** `NAME=PATH[:KIND]` of `--dataset` → [NAME, decl]. KIND is the text after the last ':' when it names a kind. */
export function parseDatasetFlag(v: string): [string, DatasetDecl] {
  const eq = v.indexOf('=');
  if (eq <= 0 || eq === v.length - 1) throw new RangeError(`Expected NAME=PATH[:KIND] for --dataset but received ${JSON.stringify(v)}`);
  const name = v.slice(0, eq);
  let p = v.slice(eq + 1);
  let kind: string | undefined;
  const colon = p.lastIndexOf(':');
  if (colon > 0 && /^[a-z][a-z-]*$/.test(p.slice(colon + 1))) {
    kind = p.slice(colon + 1);
    p = p.slice(0, colon);
    if (!(DATASET_KINDS as readonly string[]).includes(kind)) throw new RangeError(`--dataset ${name}: unknown kind ${JSON.stringify(kind)}; kinds: ${DATASET_KINDS.join(', ')}`);
  }
  const decl = { path: p, ...(kind ? { kind } : {}) };
  checkDatasetDecls({ [name]: decl }, '--dataset');
  return [name, decl];
}
