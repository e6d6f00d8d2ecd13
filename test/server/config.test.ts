import { readFileSync } from 'node:fs';
import t from 'tap';
import { parse } from 'yaml';
import { CONFIG_ENV, ConfigError, DEFAULT_PORT, DEFAULT_REDIS_URL, loadConfig } from '../../src/server/config.js';

t.test('defaults', async (t) => {
  const config = loadConfig({});
  t.same(config, { redisUrl: DEFAULT_REDIS_URL, redisUrlIsDefault: true, prefix: 'dcp', host: '127.0.0.1', port: DEFAULT_PORT, adminToken: undefined, adminTokenReads: false, logLevel: 'info', recycleTtlMs: 0 });
  t.equal(loadConfig({ ADMIN_TOKEN: '' }).adminToken, undefined, 'empty means unset');
});

t.test('values are read and validated', async (t) => {
  const config = loadConfig({ REDIS_URL: 'rediss://user:pw@cache:6380/2', DCP_PREFIX: 'team-a', HOST: '0.0.0.0', PORT: '9000', ADMIN_TOKEN: 'a'.repeat(32), ADMIN_TOKEN_READS: 'true', LOG_LEVEL: 'warn', DCP_RECYCLE_TTL_MS: '600000' });
  t.match(config, { redisUrl: 'rediss://user:pw@cache:6380/2', redisUrlIsDefault: false, prefix: 'team-a', host: '0.0.0.0', port: 9000, adminToken: 'a'.repeat(32), adminTokenReads: true, logLevel: 'warn', recycleTtlMs: 600000 });
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ REDIS_URL: 'http://x' }, /REDIS_URL/],
    [{ DCP_PREFIX: 'has space' }, /DCP_PREFIX/],
    [{ DCP_PREFIX: 'a{b}' }, /DCP_PREFIX/],
    [{ PORT: '80a' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ PORT: '-1' }, /PORT/],
    [{ HOST: 'a b' }, /HOST/],
    [{ ADMIN_TOKEN: 'short' }, /ADMIN_TOKEN must be at least 16/],
    [{ ADMIN_TOKEN: 'with space inside ok ok' }, /visible ASCII/],
    [{ ADMIN_TOKEN_READS: '1' }, /ADMIN_TOKEN_READS is set but ADMIN_TOKEN is not/],
    [{ ADMIN_TOKEN: 'a'.repeat(20), ADMIN_TOKEN_READS: 'maybe' }, /ADMIN_TOKEN_READS must be/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ DCP_RECYCLE_TTL_MS: '-5' }, /DCP_RECYCLE_TTL_MS/],
    [{ DCP_RECYCLE_TTL_MS: '1.5' }, /DCP_RECYCLE_TTL_MS/],
    [{ DCP_RECYCLE_TTL_MS: '1e99' }, /DCP_RECYCLE_TTL_MS/],
  ];
  for (const [env, message] of bad) t.throws(() => loadConfig(env), message, JSON.stringify(env));
  try {
    loadConfig({ PORT: 'x', LOG_LEVEL: 'loud' });
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof ConfigError);
    t.equal((err as ConfigError).problems.length, 2, 'every problem reported at once');
  }
});

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}

/** docker compose's ${VAR:-default} with nothing set in the environment. */
function composeDefaults(value: string): string {
  return value.replace(/\$\{(\w+):-([^}]*)\}/g, (_, _name: string, fallback: string) => fallback);
}

t.test('docker-compose.yml matches the server configuration', async (t) => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as { services: Record<string, ComposeService> };
  t.same(Object.keys(compose.services).sort(), ['api', 'prometheus', 'redis']);
  const { redis, api } = compose.services as { redis: ComposeService; api: ComposeService };

  const command = redis.command!.join(' ');
  t.match(command, /--appendonly yes/, 'AOF on');
  t.match(command, /--maxmemory-policy noeviction/, 'no eviction');
  t.match(redis.healthcheck!.test.join(' '), /redis-cli ping/);

  t.ok(api.build, 'api is built from the repo');
  t.same(api.depends_on, { redis: { condition: 'service_healthy' } });
  const env = api.environment!;
  for (const name of Object.keys(env)) t.ok((CONFIG_ENV as readonly string[]).includes(name), `${name} is read by src/server/config.ts`);
  for (const name of ['REDIS_URL', 'HOST', 'PORT', 'ADMIN_TOKEN', 'DCP_PREFIX']) t.ok(name in env, `${name} is set`);

  const config = loadConfig(Object.fromEntries(Object.entries(env).map(([k, v]) => [k, composeDefaults(String(v))])));
  const redisUrl = new URL(config.redisUrl);
  t.equal(redisUrl.hostname, 'redis', 'REDIS_URL points at the redis service');
  const redisPorts = redis.ports!.map((p) => Number(p.split(':').at(-1)));
  t.ok(redisPorts.includes(Number(redisUrl.port || 6379)), 'at the port redis listens on');
  t.equal(config.host, '0.0.0.0', 'listens on all interfaces inside the container');
  const apiPorts = api.ports!.map((p) => Number(p.split(':').at(-1)));
  t.same(apiPorts, [config.port], 'publishes the port the server listens on');
  t.equal(config.adminToken, undefined, 'no token by default (the server warns)');

  const dockerfile = readFileSync('Dockerfile', 'utf8');
  t.match(dockerfile, new RegExp(`EXPOSE ${config.port}`));
  t.match(dockerfile, /CMD \["node", "dist\/src\/server\/main\.js"\]/, 'runs the compiled server entry');
  t.match(dockerfile, /npm run build/);
});

t.test('the optional Prometheus service (profile monitoring) scrapes the API\'s /metrics', async (t) => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as { services: Record<string, ComposeService & { profiles?: string[]; volumes?: string[] }> };
  const { prometheus, api } = compose.services as Record<string, ComposeService & { profiles?: string[]; volumes?: string[]; command?: string[] }>;
  t.same(prometheus!.profiles, ['monitoring'], 'only with --profile monitoring');
  t.notOk(api!.profiles, 'the API itself is not optional');
  const mount = prometheus!.volumes!.find((v) => v.endsWith(':/etc/prometheus/prometheus.yml:ro'));
  t.ok(mount, 'its configuration file is mounted');
  t.match(prometheus!.command!.join(' '), /--config\.file=\/etc\/prometheus\/prometheus\.yml/);
  const file = mount!.split(':')[0]!;
  const scrape = parse(readFileSync(file, 'utf8')) as { scrape_configs: Array<{ job_name: string; metrics_path?: string; static_configs: Array<{ targets: string[] }> }> };
  const config = loadConfig(Object.fromEntries(Object.entries(api!.environment!).map(([k, v]) => [k, composeDefaults(String(v))])));
  const targets = scrape.scrape_configs.flatMap((job) => job.static_configs.flatMap((s) => s.targets.map((target) => ({ target, path: job.metrics_path ?? '/metrics' }))));
  t.same(targets, [{ target: `api:${config.port}`, path: '/metrics' }], 'the api service, at the port it listens on, path /metrics');
});
