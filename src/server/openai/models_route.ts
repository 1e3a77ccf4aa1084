// GET /v1/models, /v1/models/:id and /health: the one model this server serves, with the medgym block
// a client needs to drive it (protocol, view size, positions per view, context, vocabulary).
import type { FastifyInstance } from 'fastify';
import type { MedgymModelInfo, ModelEntry } from '../../policy/openai/types';
import { OpenAIError } from './errors';
import type { Scheduler } from './scheduler';

export function modelEntry(name: string, info: MedgymModelInfo, created: number): ModelEntry {
  return { id: name, object: 'model', created, owned_by: 'medgym', medgym: info };
}

export function registerModelRoutes(app: FastifyInstance, entry: ModelEntry, scheduler: Scheduler): void {
  app.get('/health', async () => ({ status: 'healthy', model: entry.id, ...scheduler.stats }));
  app.get('/v1/models', async () => ({ object: 'list', data: [entry] }));
  app.get('/v1/models/:id', async (req) => {
    const id = (req.params as { id: string }).id;
    if (id !== entry.id) throw new OpenAIError(404, 'not_found_error', `model ${JSON.stringify(id)} does not exist; this server serves ${JSON.stringify(entry.id)}`, 'model', 'model_not_found');
    return entry;
  });
}
