import { readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import t from 'tap';
import { parse } from 'yaml';
import { ERROR_CODES } from '../../src/core/error-codes.js';
import { buildApp } from '../../src/server/app.js';
import { OPENAPI_FILE, renderOpenApiYaml } from '../../scripts/openapi.js';

type OpenApiDoc = {
  openapi: string;
  paths: Record<string, Record<string, { operationId?: string; parameters?: Array<{ name: string; in: string }>; security?: unknown[]; responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>;
  components: { securitySchemes: Record<string, unknown>; schemas: Record<string, unknown> };
};

// No Redis at all: building the app and its document must not need one.
const app = await buildApp({ redis: 'redis://127.0.0.1:1' });
t.teardown(() => app.close());

t.test('openapi.yaml is what the server serves at /docs/yaml, byte for byte', async (t) => {
  const committed = readFileSync(OPENAPI_FILE, 'utf8');
  const served = await app.inject('/docs/yaml');
  t.equal(served.statusCode, 200);
  t.equal(served.body, committed, 'run `npm run openapi` after changing a route schema');
  t.equal(await renderOpenApiYaml(), committed, 'the generator reproduces it');
  const json = await app.inject('/docs/json');
  t.same(json.json(), parse(committed), '/docs/json is the same document');
});

t.test('the document validates as OpenAPI 3 and covers every operation completely', async (t) => {
  const doc = parse(readFileSync(OPENAPI_FILE, 'utf8')) as OpenApiDoc;
  await SwaggerParser.validate(structuredClone(doc) as never);
  t.match(doc.openapi, /^3\./);
  const operations = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })));
  t.same(
    operations.map((o) => `${o.method.toUpperCase()} ${o.path}`).sort(),
    ['DELETE /checkpoints/{id}', 'GET /checkpoints', 'GET /checkpoints/{id}', 'GET /health', 'GET /metrics', 'GET /usage', 'POST /checkpoints/{id}/validate', 'POST /gc'],
  );
  t.ok(doc.components.securitySchemes.bearerAuth, 'bearer scheme declared');
  t.ok(doc.components.schemas.Problem, 'problem schema declared once');
  for (const { path, method, op } of operations) {
    const name = `${method.toUpperCase()} ${path}`;
    t.ok(op.operationId, `${name} has an operationId`);
    if (path.includes('{id}')) t.ok(op.parameters?.some((p) => p.in === 'path' && p.name === 'id'), `${name} documents the id`);
    if (path === '/health') continue;
    for (const status of path === '/metrics' ? ['500', '503'] : ['400', '500', '503']) {
      t.same(op.responses[status]?.content?.['application/problem+json']?.schema, { $ref: '#/components/schemas/Problem' }, `${name} documents ${status} as a problem`);
    }
    t.ok(op.security?.length, `${name} declares its security`);
  }
  t.same(doc.paths['/checkpoints/{id}']!.delete!.security, [{ bearerAuth: [] }]);
  t.ok(doc.paths['/checkpoints/{id}']!.delete!.responses['409'], 'DELETE documents 409');
  t.ok(doc.paths['/checkpoints/{id}']!.delete!.responses['204'], 'DELETE documents 204');
  t.ok(doc.paths['/health']!.get!.responses['503'], 'health documents 503');
});

t.test('response shapes are named components (one definition each), referenced by the operations', async (t) => {
  const doc = parse(readFileSync(OPENAPI_FILE, 'utf8')) as OpenApiDoc;
  for (const name of ['CheckpointSummary', 'CheckpointPage', 'CheckpointDetails', 'CheckpointMetadata', 'CheckpointState', 'ValidationReport', 'ValidationProblem', 'ProblemKind', 'Problem']) {
    t.ok(doc.components.schemas[name], `components/schemas/${name}`);
  }
  const ok = (path: string, method: string) => doc.paths[path]![method]!.responses['200']!.content!['application/json']!.schema;
  t.same(ok('/checkpoints', 'get'), { $ref: '#/components/schemas/CheckpointPage' });
  t.same(ok('/checkpoints/{id}', 'get'), { $ref: '#/components/schemas/CheckpointDetails' });
  t.same(ok('/checkpoints/{id}/validate', 'post'), { $ref: '#/components/schemas/ValidationReport' });
  const codes = ((doc.components.schemas.Problem as { properties: { code: { enum: string[] } } }).properties.code.enum);
  t.same(codes, Object.keys(ERROR_CODES), 'Problem.code lists the codes of the error table');
});
