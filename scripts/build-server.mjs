/**
 * Builds the service (api/server.ts) into .build/server.js with esbuild, for plain `node .build/server.js`:
 * `npm start` (scripts/start.sh) and the test harness (test/harness/server.ts) both run it so. Offline, about 0.3 s.
 *
 * Why a bundle: `node --import tsx` kept about 100 MiB more resident than the same code as plain JavaScript (the
 * loader's transform of every file at start-up), which put the idle service over its 200 MiB budget (issue 12).
 *
 * - Packages stay external (node_modules, resolved at run time as before); only our own TypeScript is bundled.
 * - ESM with code splitting: what the code imports with `await import()` (the tenant program with @pulumi/aws, loaded
 *   with the first stack run) becomes a chunk of its own, so that it stays out of start-up; without splitting, esbuild
 *   would hoist the program's package imports to the top of server.js.
 * - `import.meta.url`, `.dirname` and `.filename` in our sources keep naming the source file (platform/config.ts finds the
 *   repository from it, db/client.ts the migrations, the console its files), not the bundle.
 * - Written so that a running service never sees a half-written file: chunks have content-hashed names and are
 *   written (temp file, rename) before the entry; a chunk a running process may still import lazily is left in place.
 *   Concurrent builds (parallel test workers) write the same bytes.
 * - A package subpath that Node's ESM resolver refuses (a directory without an exports map, such as
 *   `@pulumi/pulumi/automation`; tsx resolved it as CommonJS does) is rewritten to the file CommonJS resolution finds.
 *
 *   node scripts/build-server.mjs        prints nothing; exits non-zero with esbuild's message on a build error
 */
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const OUT_DIR = join(REPO_ROOT, ".build");
/** Chunks of earlier builds older than this are removed (a service started before them has long loaded its own). */
const STALE_CHUNK_MS = 24 * 3600 * 1000;

/** Whether Node's ESM resolver loads `specifier` (import.meta.resolve does not check that the file exists). */
function esmResolvable(specifier) {
  try {
    const url = import.meta.resolve(specifier, `file://${REPO_ROOT}/`);
    return !url.startsWith("file:") || statSync(fileURLToPath(url)).isFile();
  } catch {
    return false;
  }
}

/** Bare package subpaths that only CommonJS resolution finds, rewritten to `<package>/<file>`; the rest unchanged. */
const nodeEsmSpecifiers = {
  name: "node-esm-specifiers",
  setup(builder) {
    builder.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith("node:") || esmResolvable(args.path)) return undefined;
      const requireHere = createRequire(join(args.resolveDir || REPO_ROOT, "noop.js"));
      let file;
      try {
        file = requireHere.resolve(args.path);
      } catch {
        return undefined;
      }
      const parts = args.path.split("/");
      const name = parts.slice(0, args.path.startsWith("@") ? 2 : 1).join("/");
      const packageDir = dirname(requireHere.resolve(`${name}/package.json`));
      return { path: `${name}/${relative(packageDir, file).split(sep).join("/")}`, external: true };
    });
  },
};

/** In our own sources, import.meta.url / dirname / filename are rewritten to the source file's, computed at run time. */
const sourceImportMeta = {
  name: "source-import-meta",
  setup(builder) {
    builder.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.includes(`${sep}node_modules${sep}`)) return undefined;
      const source = await readFile(args.path, "utf8");
      if (!/\bimport\.meta\.(url|dirname|filename)\b/.test(source)) return undefined;
      const fromBundle = relative(OUT_DIR, args.path).split(sep).join("/");
      const prologue = [
        `import { fileURLToPath as __sourceFileURLToPath } from "node:url";`,
        `import { dirname as __sourceDirnameOf } from "node:path";`,
        `const __sourceUrl = new URL(${JSON.stringify(fromBundle)}, import.meta.url).href;`,
        `const __sourceFilename = __sourceFileURLToPath(__sourceUrl);`,
        `const __sourceDirname = __sourceDirnameOf(__sourceFilename);`,
      ].join(" ");
      const names = { url: "__sourceUrl", dirname: "__sourceDirname", filename: "__sourceFilename" };
      // On the first line, so that esbuild's line numbers still match the source's.
      const contents = `${prologue}${source.replace(/\bimport\.meta\.(url|dirname|filename)\b/g, (_match, key) => names[key])}`;
      return { contents, loader: "ts", resolveDir: dirname(args.path) };
    });
  },
};

const result = await build({
  absWorkingDir: REPO_ROOT,
  entryPoints: ["api/server.ts"],
  outdir: OUT_DIR,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node22",
  packages: "external",
  chunkNames: "[name]-[hash]",
  plugins: [nodeEsmSpecifiers, sourceImportMeta],
  write: false,
  logLevel: "warning",
});

await mkdir(OUT_DIR, { recursive: true });
const entry = join(OUT_DIR, "server.js");
const written = new Set();
async function writeAtomically(path, contents) {
  written.add(basename(path));
  const current = await readFile(path).catch(() => undefined);
  if (current && Buffer.compare(current, contents) === 0) return;
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(temporary, contents);
  await rename(temporary, path);
}
for (const file of result.outputFiles) if (file.path !== entry) await writeAtomically(file.path, file.contents);
const entryFile = result.outputFiles.find((file) => file.path === entry);
if (!entryFile) throw new Error(`esbuild wrote no ${entry}`);
await writeAtomically(entry, entryFile.contents);

for (const name of await readdir(OUT_DIR)) {
  if (written.has(name)) continue;
  const path = join(OUT_DIR, name);
  const info = await stat(path).catch(() => undefined);
  if (info && Date.now() - info.mtimeMs > STALE_CHUNK_MS) await rm(path, { force: true });
}
