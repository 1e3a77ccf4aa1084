// dcmjs ships no types; medgym uses a few calls of its data API (see src/data/loaders/dicom.ts).
declare module 'dcmjs';
