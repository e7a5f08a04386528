/**
 * @pulumi/pulumi's runtime entry requires `typescript` and `@npmcli/arborist` as it loads (runtime/closure/*), although
 * only closure serialization uses them (pulumi.runtime.serializeFunction / computeCodePaths: function-valued resources
 * such as aws.lambda.CallbackFunction). Together they keep about 60 MiB resident in a process that runs inline
 * programs; the tenant program serializes no function. So, in this process, a require of either from inside
 * @pulumi/pulumi returns a stand-in that loads the real module on its first property access: a program that does
 * serialize a closure still gets the real modules, only later. Measured with `BENCH_PARTS=memory npm run bench:api`.
 */
import Module from "node:module";

const DEFERRED = new Set(["typescript", "@npmcli/arborist"]);
const PULUMI_SDK = /[\\/]node_modules[\\/]@pulumi[\\/]pulumi[\\/]/;

type Load = (request: string, parent: { filename?: string | null } | undefined, isMain: boolean) => unknown;
const loader = Module as unknown as { _load: Load };

let installed = false;

/** Idempotent; call before the first import of @pulumi/pulumi. */
export function deferClosureSerializerDeps(): void {
  if (installed) return;
  installed = true;
  const load = loader._load;
  loader._load = function (this: unknown, request, parent, isMain) {
    if (!DEFERRED.has(request) || !PULUMI_SDK.test(parent?.filename ?? "")) return load.call(this, request, parent, isMain);
    let real: Record<PropertyKey, unknown> | undefined;
    const resolve = () => (real ??= load.call(this, request, parent, isMain) as Record<PropertyKey, unknown>);
    return new Proxy(
      {},
      {
        // `__esModule` answers without loading: TypeScript's __importStar helper asks it first, and otherwise copies
        // (so loads) every export.
        get: (_target, key) => (key === "__esModule" ? true : resolve()[key]),
        has: (_target, key) => key in resolve(),
      },
    );
  };
}
