/**
 * `npm start`: the admin API as a process, configured from the environment
 * (REDIS_URL, DCP_PREFIX, HOST, PORT, ADMIN_TOKEN, ADMIN_TOKEN_READS, LOG_LEVEL).
 * Exit codes: 0 clean shutdown, 1 runtime error, 2 invalid configuration, 3 no Redis.
 */
import { ConfigError, loadConfig } from './config.js';

// Exit codes (also in start.ts' SERVER_EXIT, kept here so a config error exits before loading the server).
const EXIT_CONFIG = 2;

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`redis-dcp: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
  const { closeOnSignals, createLogger, NoRedisError, SERVER_EXIT, startServer } = await import('./start.js');
  const log = createLogger(config);
  try {
    const server = await startServer(config, log);
    closeOnSignals(server, log);
  } catch (err) {
    if (err instanceof NoRedisError) {
      log.fatal('no Redis reachable; exiting');
      process.stderr.write(`\nredis-dcp: ${err.message}\n`);
      process.exitCode = SERVER_EXIT.noRedis;
      return;
    }
    log.fatal({ err }, 'could not start the admin API');
    process.exitCode = SERVER_EXIT.error;
  }
}

await main();
