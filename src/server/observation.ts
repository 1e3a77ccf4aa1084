// medgym's Observation / StepResult → OpenEnv's JSON: views as MCP image content (PNG, base64),
// done = terminated || truncated, and the env's info under metadata.
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import type { Observation, StepInfo, StepResult } from '../env/types';
import type { ViewImage } from '../tools/image';

export type ImagesMode = 'inline' | 'blobs';

export interface ImageContent {
  type: 'image';
  /** Base64 PNG (images "inline"). */
  data?: string;
  /** `/blobs/<sha256>` (images "blobs"): the PNG, while the server's blob store keeps it. */
  uri?: string;
  mimeType: 'image/png';
  w: number;
  h: number;
  channels: 1 | 3;
  /** Of the raw pixels, so that a client can check a decoded PNG and dedupe views without the encoder in the loop. */
  sha256: string;
}

export interface WireObservation {
  text: string;
  tokens: number[];
  images: ImageContent[];
  original_size: { width: number; height: number };
}

export interface WireStep {
  observation: WireObservation;
  reward: number | null;
  done: boolean;
  metadata: { terminated: boolean; truncated: boolean; info: StepInfo; request_id?: string };
}

/**
 * Recent view PNGs by the sha256 of their pixels (GET /blobs/<sha256>), least recently used out
 * first. Also spares re-encoding a view the server sent lately (PNG encoding is deterministic).
 */
export class BlobStore {
  private readonly map = new Map<string, Buffer>();
  constructor(readonly capacity = 256) {}

  get size(): number {
    return this.map.size;
  }

  get(sha256: string): Buffer | undefined {
    const png = this.map.get(sha256);
    if (png) {
      this.map.delete(sha256); // refresh: Map keeps insertion order
      this.map.set(sha256, png);
    }
    return png;
  }

  put(sha256: string, png: Buffer): void {
    if (this.capacity <= 0) return;
    this.map.delete(sha256);
    this.map.set(sha256, png);
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as string);
  }
}

export interface EncodeOptions {
  /** Where sent PNGs are kept (and looked up before encoding). */
  blobs?: BlobStore;
  /** Default inline. */
  images?: ImagesMode;
}

export async function encodeView(v: ViewImage, opts: EncodeOptions = {}): Promise<ImageContent> {
  const raw = Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength);
  const sha256 = createHash('sha256').update(raw).digest('hex');
  let png = opts.blobs?.get(sha256);
  if (!png) {
    let img = sharp(raw, { raw: { width: v.width, height: v.height, channels: v.channels } });
    if (v.channels === 1) img = img.toColourspace('b-w'); // else sharp writes grey views as RGB PNGs
    png = await img.png().toBuffer();
    opts.blobs?.put(sha256, png);
  }
  const meta = { mimeType: 'image/png' as const, w: v.width, h: v.height, channels: v.channels, sha256 };
  if (opts.images === 'blobs' && opts.blobs) return { type: 'image', ...meta, uri: `/blobs/${sha256}` };
  return { type: 'image', data: png.toString('base64'), ...meta };
}

export async function encodeObservation(o: Observation, opts: EncodeOptions = {}): Promise<WireObservation> {
  return { text: o.text, tokens: o.tokens, images: await Promise.all(o.images.map((v) => encodeView(v, opts))), original_size: { ...o.originalSize } };
}

/** reset's answer: OpenEnv's ResetResponse plus the info of the first observation. */
export async function encodeReset(r: { observation: Observation; info: StepInfo }, episodeId: string, opts: EncodeOptions = {}): Promise<WireStep & { episode_id: string }> {
  return {
    observation: await encodeObservation(r.observation, opts),
    reward: null,
    done: false,
    episode_id: episodeId,
    metadata: { terminated: false, truncated: false, info: r.info },
  };
}

export async function encodeStep(r: StepResult, requestId?: string | null, opts: EncodeOptions = {}): Promise<WireStep> {
  const metadata: WireStep['metadata'] = { terminated: r.terminated, truncated: r.truncated, info: r.info };
  if (requestId) metadata.request_id = requestId;
  return { observation: await encodeObservation(r.observation, opts), reward: r.reward, done: r.terminated || r.truncated, metadata };
}
