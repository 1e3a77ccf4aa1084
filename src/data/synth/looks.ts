// The eight modality looks of MedVista-Synth: storage format, background anatomy, noise model,
// how a finding shows at the global view (offset, tint) and its vocabulary. Coordinates are
// fractions of the image side so that any imageSize works.
import type { IntensityWindow } from '../../tools/image';
import type { Stream } from '../rng';
import { addEllipse, addField, canvas, stamp, valueNoise, type Canvas } from './canvas';

export const MODALITIES = ['ct', 'mri', 'xray', 'ultrasound', 'dermoscopy', 'fundus', 'oct', 'microscopy'] as const;
export type Modality = (typeof MODALITIES)[number];

export interface Look {
  /** Option text for modality recognition. */
  label: string;
  /** Channels of the stored image: 1 (grey) or 3 (RGB). */
  channels: 1 | 3;
  /** Bits per stored sample. */
  bitDepth: 8 | 16;
  /** Largest stored value (4095 for the 12-bit-in-16 looks). */
  max: number;
  /** Background anatomy (noise-free). */
  paint(rng: Stream, w: number, h: number): Canvas;
  /** Per-pixel noise, applied last. */
  noise(rng: Stream, cv: Canvas): void;
  /** Finding mean offset (stored units) at contrast 1, and its colour tint. */
  offset: number;
  /** Per-channel multiplier of the finding's offset (its colour). */
  tint: number[];
  /** Amplitude of the deciding detail (stored units); needsWindowAmp when it needs a window. */
  detailAmp: number;
  /** Detail amplitude (stored units) of items that need a window; set on looks that have one. */
  needsWindowAmp?: number;
  /** Window that shows needsWindowAmp details (CT/MRI). */
  window?: IntensityWindow;
  /** True where a finding centre may go (inside the body / fan / fundus circle). */
  inside(fx: number, fy: number): boolean;
  /** Names of the four image quadrants (A1–B2, C1–D2, A3–B4, C3–D4) for anatomy questions. */
  structures: [string, string, string, string];
  /** Diagnoses for detail classes 0–3 (smooth, horizontal, vertical, checkered). */
  diagnoses: [string, string, string, string];
  /** Noun for the finding ("lesion", "nodule", …). */
  finding: string;
}

const gaussian = (sigma: number) => (rng: Stream, cv: Canvas): void => {
  const n = rng.fillNormal(new Float32Array(cv.px.length));
  for (let i = 0; i < cv.px.length; i++) cv.px[i] += sigma * n[i];
};
const speckle = (k: number, floor: number) => (rng: Stream, cv: Canvas): void => {
  const n = rng.fillNormal(new Float32Array(2 * cv.px.length));
  for (let i = 0; i < cv.px.length; i++) cv.px[i] = cv.px[i] * (1 + k * n[2 * i]) + floor * n[2 * i + 1];
};
const inEllipse = (cx: number, cy: number, rx: number, ry: number) => (fx: number, fy: number): boolean =>
  ((fx - cx) / rx) ** 2 + ((fy - cy) / ry) ** 2 <= 1;

export const LOOKS: Record<Modality, Look> = {
  ct: {
    label: 'CT',
    channels: 1,
    bitDepth: 16,
    max: 4095,
    // Abdomen, axial, stored as HU + 1024: air, fat rim, soft tissue, liver/spleen/kidneys, spine.
    paint(rng, w, h) {
      const cv = canvas(w, h, 1, 24);
      addEllipse(cv, 0.5 * w, 0.52 * h, 0.47 * w, 0.44 * h, 900);
      addEllipse(cv, 0.5 * w, 0.52 * h, 0.44 * w, 0.41 * h, 140);
      addEllipse(cv, 0.3 * w, 0.3 * h, 0.17 * w, 0.15 * h, 20);
      addEllipse(cv, 0.7 * w, 0.3 * h, 0.13 * w, 0.12 * h, 10);
      addEllipse(cv, 0.3 * w, 0.7 * h, 0.1 * w, 0.12 * h, -10);
      addEllipse(cv, 0.7 * w, 0.7 * h, 0.1 * w, 0.12 * h, -10);
      addEllipse(cv, 0.5 * w, 0.82 * h, 0.06 * w, 0.06 * h, 650);
      addField(cv, valueNoise(rng, w, h, 8), 6);
      return cv;
    },
    noise: gaussian(4),
    offset: 60,
    tint: [1],
    detailAmp: 100,
    needsWindowAmp: 6,
    window: { center: 1120, width: 100 },
    inside: inEllipse(0.5, 0.52, 0.36, 0.33),
    structures: ['liver', 'spleen', 'right kidney', 'left kidney'],
    diagnoses: ['simple cyst', 'hemangioma', 'metastasis', 'abscess'],
    finding: 'lesion',
  },
  mri: {
    label: 'MRI',
    channels: 1,
    bitDepth: 16,
    max: 4095,
    // Brain, axial T1-like: skull ring, grey and white matter, ventricles; Rician-like noise.
    paint(rng, w, h) {
      const cv = canvas(w, h, 1, 0);
      addEllipse(cv, 0.5 * w, 0.5 * h, 0.46 * w, 0.47 * h, 900);
      addEllipse(cv, 0.5 * w, 0.5 * h, 0.42 * w, 0.43 * h, -300);
      addEllipse(cv, 0.5 * w, 0.5 * h, 0.33 * w, 0.35 * h, 50);
      addEllipse(cv, 0.45 * w, 0.48 * h, 0.03 * w, 0.1 * h, -350);
      addEllipse(cv, 0.55 * w, 0.48 * h, 0.03 * w, 0.1 * h, -350);
      addField(cv, valueNoise(rng, w, h, 6), 10);
      return cv;
    },
    noise(rng, cv) {
      const n = rng.fillNormal(new Float32Array(2 * cv.px.length));
      for (let i = 0; i < cv.px.length; i++) {
        const re = cv.px[i] + 2.5 * n[2 * i];
        const im = 2.5 * n[2 * i + 1];
        cv.px[i] = Math.sqrt(re * re + im * im);
      }
    },
    offset: 70,
    tint: [1],
    detailAmp: 60,
    needsWindowAmp: 4,
    window: { center: 720, width: 60 },
    inside: inEllipse(0.5, 0.5, 0.36, 0.37),
    structures: ['right frontal lobe', 'left frontal lobe', 'right occipital lobe', 'left occipital lobe'],
    diagnoses: ['meningioma', 'low-grade glioma', 'metastasis', 'abscess'],
    finding: 'lesion',
  },
  xray: {
    label: 'X-ray',
    channels: 1,
    bitDepth: 8,
    max: 255,
    // Chest PA: soft tissue, dark lungs, bright mediastinum, rib bands.
    paint(rng, w, h) {
      const cv = canvas(w, h, 1, 20);
      addEllipse(cv, 0.5 * w, 0.55 * h, 0.48 * w, 0.5 * h, 120);
      addEllipse(cv, 0.29 * w, 0.5 * h, 0.18 * w, 0.38 * h, -70);
      addEllipse(cv, 0.71 * w, 0.5 * h, 0.18 * w, 0.38 * h, -70);
      addEllipse(cv, 0.5 * w, 0.55 * h, 0.08 * w, 0.4 * h, 60);
      for (let k = 0; k < 7; k++) addEllipse(cv, 0.5 * w, (0.18 + 0.1 * k) * h, 0.42 * w, 0.012 * h, 14);
      addField(cv, valueNoise(rng, w, h, 6), 5);
      return cv;
    },
    noise(rng, cv) {
      const n = rng.fillNormal(new Float32Array(cv.px.length));
      for (let i = 0; i < cv.px.length; i++) cv.px[i] += 0.35 * Math.sqrt(Math.max(cv.px[i], 1)) * n[i];
    },
    offset: 28,
    tint: [1],
    detailAmp: 22,
    inside: (fx, fy) => inEllipse(0.29, 0.5, 0.16, 0.36)(fx, fy) || inEllipse(0.71, 0.5, 0.16, 0.36)(fx, fy),
    structures: ['right upper zone', 'left upper zone', 'right lower zone', 'left lower zone'],
    diagnoses: ['benign nodule', 'pneumonia', 'tuberculosis', 'primary carcinoma'],
    finding: 'opacity',
  },
  ultrasound: {
    label: 'ultrasound',
    channels: 1,
    bitDepth: 8,
    max: 255,
    // Linear-probe thyroid: fan of speckled tissue, two hypoechoic lobes.
    paint(rng, w, h) {
      const cv = canvas(w, h, 1, 0);
      const field = valueNoise(rng, w, h, 10);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const dx = x / w - 0.5;
          const dy = y / h + 0.15;
          const r = Math.hypot(dx, dy);
          if (Math.abs(Math.atan2(dx, dy)) < 0.72 && r < 1.1) cv.px[y * w + x] = 95 + 15 * field[y * w + x] - 25 * r;
        }
      }
      addEllipse(cv, 0.3 * w, 0.55 * h, 0.16 * w, 0.3 * h, -15);
      addEllipse(cv, 0.7 * w, 0.55 * h, 0.16 * w, 0.3 * h, -15);
      return cv;
    },
    noise: speckle(0.12, 2),
    offset: -30,
    tint: [1],
    detailAmp: 26,
    inside: (fx, fy) => Math.abs(Math.atan2(fx - 0.5, fy + 0.15)) < 0.55 && fy > 0.12 && fy < 0.9,
    structures: ['right lobe, upper pole', 'left lobe, upper pole', 'right lobe, lower pole', 'left lobe, lower pole'],
    diagnoses: ['simple cyst', 'follicular adenoma', 'papillary carcinoma', 'colloid nodule'],
    finding: 'nodule',
  },
  dermoscopy: {
    label: 'dermoscopy',
    channels: 3,
    bitDepth: 8,
    max: 255,
    // Skin with a pigmented nevus and a few hairs.
    paint(rng, w, h) {
      const cv = canvas(w, h, 3, [205, 160, 140]);
      addField(cv, valueNoise(rng, w, h, 5), 10, [1, 0.9, 0.8]);
      addEllipse(cv, (0.5 + rng.uniform(-0.03, 0.03)) * w, 0.5 * h, 0.4 * w, 0.38 * h, -70, [1, 1.1, 1.1]);
      for (let k = 0; k < 4; k++) {
        const x0 = rng.uniform(0, w);
        const slope = rng.uniform(-1.5, 1.5);
        for (let y = 0; y < h; y++) stamp(cv, x0 + slope * (y - h / 2), y + 0.5, 1, -60);
      }
      return cv;
    },
    noise: gaussian(3),
    offset: -30,
    tint: [1, 1, 0.6],
    detailAmp: 24,
    inside: inEllipse(0.5, 0.5, 0.32, 0.3),
    structures: ['upper-left quadrant', 'upper-right quadrant', 'lower-left quadrant', 'lower-right quadrant'],
    diagnoses: ['benign nevus', 'melanoma', 'seborrheic keratosis', 'basal cell carcinoma'],
    finding: 'structure',
  },
  fundus: {
    label: 'fundus photography',
    channels: 3,
    bitDepth: 8,
    max: 255,
    // Retina: orange-red disc with vignetting, optic disc, vessels.
    paint(rng, w, h) {
      const cv = canvas(w, h, 3, [0, 0, 0]);
      addEllipse(cv, 0.5 * w, 0.5 * h, 0.48 * w, 0.48 * h, 1, [190, 85, 35]);
      addEllipse(cv, 0.5 * w, 0.5 * h, 0.3 * w, 0.3 * h, 1, [15, 8, 4]);
      addEllipse(cv, 0.5 * w, 0.5 * h, 0.06 * w, 0.06 * h, -1, [40, 25, 10]);
      addEllipse(cv, 0.74 * w, 0.5 * h, 0.07 * w, 0.07 * h, 1, [50, 90, 70]);
      for (let k = 0; k < 4; k++) {
        const bend = rng.uniform(0.15, 0.35) * (k % 2 ? 1 : -1);
        // One stamp per column: vessels run left from the disc.
        for (let x = Math.round(0.19 * w); x < Math.round(0.74 * w); x++) {
          const t = (0.74 - x / w) / 0.55;
          const y = (0.5 + (k < 2 ? -1 : 1) * bend * Math.sin(t * Math.PI * 0.8)) * h;
          stamp(cv, x + 0.5, y, 1.2, -1, [60, 40, 15]);
        }
      }
      return cv;
    },
    noise: gaussian(3),
    offset: 30,
    tint: [1, 1, 0.3],
    detailAmp: 22,
    inside: (fx, fy) => inEllipse(0.5, 0.5, 0.4, 0.4)(fx, fy) && !inEllipse(0.74, 0.5, 0.12, 0.12)(fx, fy),
    structures: ['superotemporal quadrant', 'superonasal quadrant', 'inferotemporal quadrant', 'inferonasal quadrant'],
    diagnoses: ['drusen', 'dot-blot hemorrhage', 'hard exudate', 'cotton-wool spot'],
    finding: 'lesion',
  },
  oct: {
    label: 'OCT',
    channels: 1,
    bitDepth: 8,
    max: 255,
    // Magnified retinal B-scan: horizontal layers of different reflectivity, speckle.
    paint(rng, w, h) {
      const cv = canvas(w, h, 1, 12);
      const bands = [0.08, 0.2, 0.34, 0.48, 0.6, 0.72, 0.86, 0.95];
      const level = [150, 70, 110, 60, 95, 55, 180];
      const wave = valueNoise(rng, w, 1, 4);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const fy = y / h + 0.02 * wave[x];
          for (let b = 0; b < level.length; b++) if (fy >= bands[b] && fy < bands[b + 1]) cv.px[y * w + x] = level[b];
        }
      }
      return cv;
    },
    noise: speckle(0.12, 2),
    offset: -30,
    tint: [1],
    detailAmp: 24,
    inside: (fx, fy) => fy > 0.14 && fy < 0.88,
    structures: ['nasal inner retina', 'temporal inner retina', 'nasal outer retina', 'temporal outer retina'],
    diagnoses: ['serous detachment', 'drusen', 'cystoid macular edema', 'choroidal neovascularization'],
    finding: 'lesion',
  },
  microscopy: {
    label: 'microscopy',
    channels: 3,
    bitDepth: 8,
    max: 255,
    // H&E section: pink stroma, purple nuclei.
    paint(rng, w, h) {
      const cv = canvas(w, h, 3, [228, 170, 200]);
      addField(cv, valueNoise(rng, w, h, 7), 12, [1, 1.2, 0.8]);
      const n = Math.round((w * h) / 500);
      for (let k = 0; k < n; k++) {
        const r = rng.uniform(0.012, 0.02) * w;
        addEllipse(cv, rng.uniform(0, w), rng.uniform(0, h), r, r * rng.uniform(0.7, 1), -1, [90, 100, 45]);
      }
      return cv;
    },
    noise: gaussian(3),
    offset: -35,
    tint: [1, 1.3, 0.5],
    detailAmp: 24,
    inside: () => true,
    structures: ['upper-left field', 'upper-right field', 'lower-left field', 'lower-right field'],
    diagnoses: ['reactive tissue', 'adenocarcinoma', 'squamous cell carcinoma', 'lymphoma'],
    finding: 'cell cluster',
  },
};

/** Plausible distractor modalities for each one, most confusable first. */
export const CONFUSABLE: Record<Modality, Modality[]> = {
  ct: ['mri', 'xray', 'ultrasound', 'oct'],
  mri: ['ct', 'xray', 'ultrasound', 'oct'],
  xray: ['ct', 'mri', 'ultrasound', 'oct'],
  ultrasound: ['oct', 'ct', 'mri', 'xray'],
  dermoscopy: ['microscopy', 'fundus', 'ultrasound', 'oct'],
  fundus: ['dermoscopy', 'oct', 'microscopy', 'ultrasound'],
  oct: ['ultrasound', 'fundus', 'mri', 'xray'],
  microscopy: ['dermoscopy', 'fundus', 'oct', 'ct'],
};
