/**
 * GET /: the operator dashboard (README "Dashboard"), static files served from memory:
 * index.html, /dashboard/app.js, /dashboard/app.css (src/server/dashboard, copied into
 * dist by `npm run build`). The page reads the JSON API with the token the operator types;
 * the files themselves are public and hold no data. Not part of the OpenAPI document.
 */
import type { FastifyPluginAsync } from 'fastify';
import { readFileSync } from 'node:fs';

export interface DashboardRouteOptions {
  /** The folder holding index.html, app.js and app.css. */
  readonly assets: URL;
}

const FILES = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/dashboard/app.js', 'app.js', 'text/javascript; charset=utf-8'],
  ['/dashboard/app.css', 'app.css', 'text/css; charset=utf-8'],
] as const;

export const dashboardRoutes: FastifyPluginAsync<DashboardRouteOptions> = async (app, { assets }) => {
  for (const [path, file, type] of FILES) {
    const body = readFileSync(new URL(file, assets));
    app.get(path, { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) => reply.type(type).header('cache-control', 'no-cache').send(body));
  }
};
