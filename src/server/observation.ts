// medgym's Observation / StepResult → OpenEnv's JSON: views as MCP image content (PNG, base64),
// done = terminated || truncated, and the env's info under metadata.
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import type { Observation, StepInfo, StepResult } from '../env/types';
import type { ViewImage } from '../tools/image';

export interface ImageContent {
  type: 'image';
  data: string;
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

export async function encodeView(v: ViewImage): Promise<ImageContent> {
  const raw = Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength);
  let img = sharp(raw, { raw: { width: v.width, height: v.height, channels: v.channels } });
  if (v.channels === 1) img = img.toColourspace('b-w'); // else sharp writes grey views as RGB PNGs
  const png = await img.png().toBuffer();
  return {
    type: 'image',
    data: png.toString('base64'),
    mimeType: 'image/png',
    w: v.width,
    h: v.height,
    channels: v.channels,
    sha256: createHash('sha256').update(raw).digest('hex'),
  };
}

export async function encodeObservation(o: Observation): Promise<WireObservation> {
  return { text: o.text, tokens: o.tokens, images: await Promise.all(o.images.map(encodeView)), original_size: { ...o.originalSize } };
}

/** reset's answer: OpenEnv's ResetResponse plus the info of the first observation. */
export async function encodeReset(r: { observation: Observation; info: StepInfo }, episodeId: string): Promise<WireStep & { episode_id: string }> {
  return {
    observation: await encodeObservation(r.observation),
    reward: null,
    done: false,
    episode_id: episodeId,
    metadata: { terminated: false, truncated: false, info: r.info },
  };
}

export async function encodeStep(r: StepResult, requestId?: string | null): Promise<WireStep> {
  const metadata: WireStep['metadata'] = { terminated: r.terminated, truncated: r.truncated, info: r.info };
  if (requestId) metadata.request_id = requestId;
  return { observation: await encodeObservation(r.observation), reward: r.reward, done: r.terminated || r.truncated, metadata };
}
