// Argument schemas of the tools (zod), also published as JSON Schema for external policies.
// Validation errors are turned into one short sentence that names the argument (sharp's style:
// "Expected integer for bbox[2] but received 'abc' of type string").
import { z } from 'zod';

const coord = z.number();
const bbox = z.array(coord).length(4);
const cell = z.string().max(8);
const span = z.union([z.literal(1), z.literal(2)]);
const scale = z.number().min(0.25).max(4);

const oneRegion = (v: { bbox?: unknown; cell?: unknown }, ctx: z.RefinementCtx): void => {
  if ((v.bbox === undefined) === (v.cell === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'Expected exactly one of bbox or cell' });
  }
};

/** One region: a pixel box or a grid cell. */
export const regionSchema = z
  .object({
    bbox: bbox.optional().describe('[x1, y1, x2, y2] integer pixels in the original image'),
    cell: cell.optional().describe('cell of the 4x4 grid: column A-D, row 1-4, e.g. "B3"'),
    span: span.optional().describe('1 (default) or 2: the 2x2 block whose top-left is cell'),
  })
  .strict()
  .superRefine(oneRegion);

export const toolSchemas = {
  zoom_in: z
    .object({
      bbox: bbox.optional().describe('[x1, y1, x2, y2] integer pixels in the original image'),
      cell: cell.optional().describe('cell of the 4x4 grid: column A-D, row 1-4, e.g. "B3"'),
      span: span.optional().describe('1 (default) or 2: the 2x2 block whose top-left is cell'),
      scale: scale.optional().describe('grow (>1) or shrink (<1) the region about its centre; default 1'),
    })
    .strict()
    .superRefine(oneRegion)
    .describe('Crop a region of the original image at full resolution, resized to the view size.'),
  crop_multi: z
    .object({ bboxes: z.array(regionSchema).min(1).max(4).describe('1 to 4 regions (bbox or cell each)') })
    .strict()
    .describe('Several crops of the original image in one call, one image each.'),
  window: z
    .object({
      center: z.number().describe('window centre in stored intensity units'),
      width: z.number().min(1).describe('window width (>= 1) in stored intensity units'),
    })
    .strict()
    .describe('Intensity window (CT/MRI); applies to this view and later zooms until view_original.'),
  enhance: z
    .object({ method: z.enum(['equalize', 'clahe', 'sharpen']) })
    .strict()
    .describe('Contrast or edge enhancement of the whole image.'),
  rotate: z
    .object({ angle: z.literal([90, 180, 270]).describe('degrees clockwise') })
    .strict()
    .describe('Rotate the whole image clockwise.'),
  flip: z
    .object({ axis: z.enum(['horizontal', 'vertical']) })
    .strict()
    .describe('Mirror the whole image: horizontal swaps left and right, vertical swaps top and bottom.'),
  view_original: z.object({}).strict().describe('The whole original image again, default window.'),
} as const;

export type ToolName = keyof typeof toolSchemas;
export const TOOL_NAMES = Object.keys(toolSchemas) as ToolName[];
export type ToolArgs<N extends ToolName> = z.infer<(typeof toolSchemas)[N]>;

/** JSON Schema of every tool, in the function-calling shape external models expect. */
export function toolJsonSchemas(): { name: ToolName; description: string; parameters: unknown }[] {
  return TOOL_NAMES.map((name) => {
    const s = toolSchemas[name];
    return { name, description: s.description ?? '', parameters: z.toJSONSchema(s, { unrepresentable: 'any' }) };
  });
}

const show = (v: unknown): string => {
  if (typeof v === 'string') return `'${v.length > 40 ? v.slice(0, 40) + '…' : v}' of type string`;
  if (v === undefined) return 'nothing (missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'object') return 'an object';
  return `${String(v)} of type ${typeof v}`;
};

const pathName = (root: string, path: PropertyKey[]): string => {
  let s = root;
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s || 'arguments';
};

const valueAt = (obj: unknown, path: PropertyKey[]): unknown => {
  let v: unknown = obj;
  for (const p of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
};

/** One sentence for the first issue of a failed parse. */
export function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
  const name = pathName('', issue.path);
  const got = valueAt(input, issue.path);
  switch (issue.code) {
    case 'invalid_type':
      return `Expected ${issue.expected} for ${name} but received ${show(got)}`;
    case 'too_small':
    case 'too_big':
    case 'invalid_value':
    case 'unrecognized_keys':
    case 'custom':
    default:
      return `Invalid ${name}: ${issue.message}${issue.code === 'unrecognized_keys' || issue.code === 'custom' ? '' : ` (received ${show(got)})`}`;
  }
}

/** Validates args for tool name; returns the parsed arguments or an error sentence. */
export function validateArgs<N extends ToolName>(name: N, args: unknown): { ok: true; value: ToolArgs<N> } | { ok: false; error: string } {
  const r = toolSchemas[name].safeParse(args);
  if (r.success) return { ok: true, value: r.data as ToolArgs<N> };
  return { ok: false, error: describeIssue(r.error.issues[0], args) };
}
