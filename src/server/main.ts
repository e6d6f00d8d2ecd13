/**
 * `npm start`: the admin API as a process, configured from the environment
 * (REDIS_URL, DCP_PREFIX, HOST, PORT, ADMIN_TOKEN, ADMIN_TOKEN_READS, LOG_LEVEL).
 * Exit codes: 0 clean shutdown, 1 runtime error, 2 invalid configuration, 3 no Redis.
 */
import { ConfigError, loadConfig } from './config.js';
import { closeOnSignals, createLogger, NoRedisError, SERVER_EXIT, startServer } from './start.js';

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`redis-dcp: ${err.message}\n`);
      process.exit(SERVER_EXIT.config);
    }
    throw err;
  }
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
