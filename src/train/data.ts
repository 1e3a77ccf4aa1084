// The items of a run: the synthetic generator, or the dataset of `env.dataset` opened from disk,
// divided into the SFT pool, the GRPO stream and the held-out set by an ItemSource. What was opened
// (path, kind, size, sha256 of the annotation files) is recorded in the run's config, so a resumed
// run and `medgym eval` reopen the same data and refuse data that changed.
import type { MedGymOptions } from '../env';
import { openDataset, type SkippedRow } from '../data/open';
import { DatasetItems, GENERATOR_ITEMS, type DatasetSplitSummary, type ItemSource } from '../rollout';
import type { TrainConfig } from './config';

export type ResolvedDataset = NonNullable<NonNullable<TrainConfig['env']['dataset']>['resolved']>;

export interface RunItems {
  source: ItemSource;
  /** Env options under which the run's envs serve these items (the opened dataset). */
  envExtra: MedGymOptions;
  /** The dataset opened, as recorded in config.json (undefined for the generator). */
  resolved?: ResolvedDataset;
  summary?: DatasetSplitSummary;
  /** Bad rows skipped while opening (file:line and why). */
  skipped: SkippedRow[];
}

/** Opens the run's items; a RangeError naming the file for a dataset that is unusable or changed since it was recorded. */
export async function openRunItems(cfg: TrainConfig): Promise<RunItems> {
  const spec = cfg.env.dataset;
  if (!spec) return { source: GENERATOR_ITEMS, envExtra: {}, skipped: [] };
  const opened = await openDataset({ path: spec.path, kind: spec.kind, language: spec.language, axis: spec.axis, slice: spec.slice, strict: spec.strict });
  const was = spec.resolved;
  if (was && was.sha256 !== opened.sha256) {
    throw new RangeError(`${opened.annotationFiles.join(', ')}: the dataset changed since the run recorded it (sha256 ${was.sha256.slice(0, 12)}… then, ${opened.sha256.slice(0, 12)}… now)`);
  }
  const source = new DatasetItems(opened.path, opened.info, { seed: cfg.seed, fractions: spec.fractions, withoutBox: spec.withoutBox, trainModalities: cfg.env.trainModalities });
  return {
    source,
    envExtra: { dataset: opened.dataset },
    resolved: { path: opened.path, kind: opened.kind, size: opened.info.length, sha256: opened.sha256, annotationFiles: opened.annotationFiles },
    summary: source.summary,
    skipped: opened.skipped,
  };
}

/** One line for the log: what the run trains and evaluates on. */
export function describeItems(items: RunItems): string {
  if (!items.resolved || !items.summary) return 'items: the synthetic generator (disjoint index ranges for SFT, GRPO and eval)';
  const r = items.resolved;
  const s = items.summary;
  const split = s.splitFrom === 'dataset' ? "the dataset's own split" : s.splitFrom === 'hash' ? 'a stable hash split by item id' : "the dataset's split where given, else a hash split";
  return (
    `dataset ${r.path} (${r.kind}, ${r.size} items, sha256 ${r.sha256.slice(0, 12)}…): ${split}: ${s.train} train, ${s.val} val, ${s.test} test; ` +
    `${s.demoEligible} train items usable as demonstrations (${s.withBox} with a box)` +
    (items.skipped.length ? `; ${items.skipped.length} bad rows skipped (first: ${items.skipped[0].where}: ${items.skipped[0].message})` : '')
  );
}
