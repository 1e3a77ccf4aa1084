// Dataset loaders: JSONL (and its JSON and CSV manifest twins), MedMNIST .npz, VQA-RAD, SLAKE,
// PMC-VQA, OmniMedVQA; NIfTI and DICOM images wherever a loader reads an image file. One entry
// point over them all: openDataset in ../open.ts.
export { LoaderError, resolveInside, answerIndex } from './common';
export type { OpenOptions, RowInfo, Rows } from './common';
export { ManifestDataset } from './manifest';
export { openJsonl, parseJsonl, openJsonManifest, jsonlRows, jsonManifestRows } from './jsonl';
export type { JsonlOptions, JsonlRecord } from './jsonl';
export { openMedMnist, medMnistRows, parseNpy, MEDMNIST_INFO } from './medmnist';
export type { MedMnistOptions, MedMnistRecord, NpyArray } from './medmnist';
export { openVqaRad, openSlake, openPmcVqa, openOmniMedVqa, vqaRadRows, slakeRows, pmcVqaRows, omniMedVqaRows } from './vqa';
export type { VqaRecord, SlakeSplit, OmniAccess } from './vqa';
export { parseCsv, parseCsvTable, openCsvManifest, csvManifestRows } from './csv';
export { readImageFile } from './image_file';
export { readNiftiSlice, readDicom, toUint16 } from './volumes';
export type { SliceOptions, VolumeImage } from './volumes';
