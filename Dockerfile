# The bot's container image. Build: docker build -t mdr-chatops-bot .  (see README, Deploy)
# Stage 1 compiles the TypeScript with the dev dependencies; the image keeps only the compiled dist/ and
# the production dependencies, so `npm start`'s build step (TypeScript) is never needed at run time.
# No secret is copied or set here: every setting comes from the environment when the container starts.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bot ./bot
COPY cards ./cards
COPY core ./core
COPY adapters ./adapters
# The preview page shows the sample incident: it is compiled into dist/samples.
COPY samples ./samples
RUN npm run build

FROM node:20-bookworm-slim AS runtime
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The image's `node` user, by number so that Kubernetes' runAsNonRoot can check it.
USER 1000:1000
EXPOSE 3978
# Liveness only (the process answers); readiness (/readyz) also needs Redis and is for the load balancer.
# The slim image has no curl: Node's own fetch asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3978) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "--max-old-space-size=384", "--max-semi-space-size=8", "dist/bot/main.js"]
