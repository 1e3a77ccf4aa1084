// Dataset loaders: JSONL, MedMNIST .npz, VQA-RAD, SLAKE, PMC-VQA, OmniMedVQA; NIfTI and DICOM
// images wherever a loader reads an image file.
export { LoaderError, resolveInside, answerIndex } from './common';
export { ManifestDataset } from './manifest';
export { openJsonl, parseJsonl } from './jsonl';
export type { JsonlOptions, JsonlRecord } from './jsonl';
export { openMedMnist, parseNpy, MEDMNIST_INFO } from './medmnist';
export type { MedMnistOptions, NpyArray } from './medmnist';
export { openVqaRad, openSlake, openPmcVqa, openOmniMedVqa } from './vqa';
export type { VqaRecord } from './vqa';
export { parseCsv } from './csv';
export { readImageFile } from './image_file';
export { readNiftiSlice, readDicom, toUint16 } from './volumes';
export type { SliceOptions, VolumeImage } from './volumes';
