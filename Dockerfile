# The redis-dcp admin API. Built by docker-compose.yml; configured by the environment
# variables of src/server/config.ts (REDIS_URL, DCP_PREFIX, HOST, PORT, ADMIN_TOKEN,
# ADMIN_TOKEN_READS, LOG_LEVEL).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY routes ./routes
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json openapi.yaml ./
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# exec form: the server is PID 1 and gets SIGTERM directly (graceful shutdown).
CMD ["node", "dist/src/server/main.js"]
