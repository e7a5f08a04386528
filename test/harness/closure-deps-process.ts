/**
 * Child process of test/unit/deferred-closure-deps.test.ts (a fresh module cache): loads @pulumi/pulumi after
 * deferClosureSerializerDeps(), then uses closure serialization, and prints which deferred modules were loaded when.
 */
import { createRequire } from "node:module";
import { deferClosureSerializerDeps } from "../../automation/deferred-closure-deps";

const require = createRequire(import.meta.url);
const loaded = () => ({
  typescript: Object.keys(require.cache).some((file) => file.includes("/node_modules/typescript/")),
  arborist: Object.keys(require.cache).some((file) => file.includes("/node_modules/@npmcli/arborist/")),
});

deferClosureSerializerDeps();
const pulumi = await import("@pulumi/pulumi");
const afterImport = loaded();
const factor = 6;
const closure = await pulumi.runtime.serializeFunction(() => 7 * factor);
const afterSerialize = loaded();
const codePaths = await pulumi.runtime.computeCodePaths();
console.log(JSON.stringify({ afterImport, afterSerialize, afterCodePaths: loaded(), closureText: closure.text, codePaths: codePaths.size }));
