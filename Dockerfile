# The platform service's image, for programs/platform (the service on Kubernetes: README, "Outgrowing one machine").
# Not built by this repository's CI: its machines have no container runtime. Build it where one is:
#   docker build -t registry.example.com/mini-xdr/platform:$(git rev-parse --short HEAD) .
FROM node:22-bookworm-slim
ARG PULUMI_VERSION=3.259.0
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
 && curl -fsSL "https://get.pulumi.com/releases/sdk/pulumi-v${PULUMI_VERSION}-linux-x64.tar.gz" | tar -xz -C /opt \
 && ln -s /opt/pulumi/pulumi /opt/pulumi/pulumi-language-nodejs /usr/local/bin/
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund || npm ci --no-audit --no-fund
COPY . .
# The resource plugins of exactly the SDK versions installed (automatic plugin acquisition is off at run time).
ENV PULUMI_HOME=/opt/pulumi-home
RUN pulumi plugin install resource aws "$(node -p 'require("@pulumi/aws/package.json").version')" \
 && pulumi plugin install resource kubernetes "$(node -p 'require("@pulumi/kubernetes/package.json").version')" \
 && node scripts/build-server.mjs \
 && useradd --uid 10001 --create-home mini-xdr && chmod -R a+rX /opt/pulumi-home
USER 10001
ENV NODE_ENV=production PULUMI_SKIP_UPDATE_CHECK=true
EXPOSE 8080
CMD ["node", ".build/server.js"]
