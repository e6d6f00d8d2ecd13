/**
 * `npm start`: the admin API as a process, configured from the environment
 * (REDIS_URL, DCP_PREFIX, HOST, PORT, ADMIN_TOKEN, ADMIN_TOKEN_READS, LOG_LEVEL).
 * Exit codes come from the error-code table: 0 clean shutdown, 1 runtime error, 2 invalid configuration
 * (CONFIG_INVALID), 3 no Redis (REDIS_UNAVAILABLE).
 */
import { ERROR_CODES, EXIT_CODES } from '../core/error-codes.js';
import { ConfigError, loadConfig } from './config.js';

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`redis-dcp: ${err.message}\n`);
      process.exit(ERROR_CODES[err.code].exit);
    }
    throw err;
  }
  const { closeOnSignals, createLogger, NoRedisError, startServer } = await import('./start.js');
  const log = createLogger(config);
  try {
    const server = await startServer(config, log);
    closeOnSignals(server, log);
  } catch (err) {
    if (err instanceof NoRedisError) {
      log.fatal('no Redis reachable; exiting');
      process.stderr.write(`\nredis-dcp: ${err.message}\n`);
      process.exitCode = ERROR_CODES[err.code].exit;
      return;
    }
    log.fatal({ err }, 'could not start the admin API');
    process.exitCode = EXIT_CODES.failure;
  }
}

await main();
