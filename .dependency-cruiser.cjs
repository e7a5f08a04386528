/**
 * The layers of ../shared/DESIGN.md, as rules (`npm test` runs `depcruise`): each layer imports only the ones below.
 *
 *   api/ (routes, auth, presenters; server.ts is the entry)     console/ (static pages)
 *     platform/           createPlatform(config): builds everything once
 *       services/onboarding/   the one writer of onboarding status; follow-ups; quick start
 *         services/<domain>/   never import each other
 *           services/core/     what several domains need
 *             automation/ programs/ db/ lib/   (lib imports nothing of ours)
 */
const DOMAINS = "(tenant|integration|run|discovery|rollout|fleet|notification|retention|organization|identity)";

module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", comment: "A cycle is two modules that cannot be understood apart.", from: {}, to: { circular: true } },
    {
      name: "lib-is-the-bottom",
      severity: "error",
      comment: "lib/ holds helpers that know nothing of this product's layers.",
      from: { path: "^lib/" },
      to: { path: "^(db|programs|automation|services|platform|api|console)/" },
    },
    {
      name: "db-above-lib-only",
      severity: "error",
      from: { path: "^db/" },
      to: { path: "^(programs|automation|services|platform|api|console)/" },
    },
    {
      name: "programs-and-automation-below-services",
      severity: "error",
      comment: "A Pulumi program and the Automation API wrapper never know the services that drive them.",
      from: { path: "^(programs|automation)/" },
      to: { path: "^(services|platform|api|console)/" },
    },
    {
      name: "core-below-domains",
      severity: "error",
      comment: "services/core/ is what several domains share: it imports none of them.",
      from: { path: "^services/core/" },
      to: { path: `^services/(${DOMAINS.slice(1, -1)}|onboarding)/|^services/index\\.ts$|^(platform|api|console)/` },
    },
    {
      name: "domains-never-import-each-other",
      severity: "error",
      comment: "A domain takes another domain's capability as a typed dependency (Pick<Service, 'method'>), never by import.",
      from: { path: `^services/${DOMAINS}/` },
      to: { path: `^services/(${DOMAINS.slice(1, -1)}|onboarding)/`, pathNot: "^services/$1/" },
    },
    {
      name: "domains-below-platform",
      severity: "error",
      from: { path: "^services/" },
      to: { path: "^(platform|api|console)/" },
    },
    {
      name: "services-index-for-the-root-and-api",
      severity: "error",
      comment: "Only the composition root and the HTTP layer see every service at once.",
      from: { pathNot: "^(platform|api)/" },
      to: { path: "^services/index\\.ts$" },
    },
    {
      name: "nothing-imports-api",
      severity: "error",
      comment: "api/ is the top: only its own modules (and the server entry) import it.",
      from: { pathNot: "^api/" },
      to: { path: "^api/" },
    },
    {
      name: "console-is-static",
      severity: "error",
      from: { path: "^console/" },
      to: { path: "^(services|platform|db|automation|programs)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|\\.tools|\\.data|test|bench|scripts|tools|console/client)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
