/**
 * Property values as the engine sends them to a provider that accepts secrets and resources.
 *
 * `@pulumi/pulumi/provider`'s server answers Configure with acceptSecrets/acceptResources = true and
 * then hands check/diff/create/update/read/delete the raw protobuf structs (`toJavaScript()`), so:
 * - a secret arrives as `{ [specialSigKey]: specialSecretSig, value }`,
 * - a resource reference as `{ [specialSigKey]: specialResourceSig, urn, id?, packageVersion? }`,
 * - an unknown (preview) as the string `unknownValue`.
 * Because the provider claimed to accept secrets, the engine does NOT copy secretness from inputs to
 * outputs (it only does that for providers that do not accept secrets — see `annotateSecrets` in the
 * engine's provider_plugin.go). A provider that returns a secret input as a plain output would leak it
 * into the state in clear text, so outputs are re-wrapped here with `annotateSecrets`.
 */
import { specialResourceSig, specialSecretSig, specialSigKey, unknownValue } from "@pulumi/pulumi/runtime/rpc";

export type Props = Record<string, unknown>;

export function isSecret(value: unknown): value is { value: unknown } {
  return isObject(value) && value[specialSigKey] === specialSecretSig;
}

export function isResourceReference(value: unknown): value is { urn: string; id?: unknown } {
  return isObject(value) && value[specialSigKey] === specialResourceSig;
}

export function isUnknown(value: unknown): boolean {
  return value === unknownValue;
}

/** True when the value is unknown or contains an unknown anywhere. */
export function containsUnknowns(value: unknown): boolean {
  if (isUnknown(value)) return true;
  if (Array.isArray(value)) return value.some(containsUnknowns);
  if (isObject(value)) return Object.values(value).some(containsUnknowns);
  return false;
}

export function secret(value: unknown): unknown {
  return isSecret(value) ? value : { [specialSigKey]: specialSecretSig, value };
}

/** Deeply strips secret wrappers; resource references become their id (what the real provider does for `role: Role`). */
export function reveal<T = unknown>(value: unknown): T {
  if (isSecret(value)) return reveal(value.value);
  if (isResourceReference(value)) return reveal(value.id ?? value.urn);
  if (Array.isArray(value)) return value.map((v) => reveal(v)) as T;
  if (isObject(value)) {
    const out: Props = {};
    for (const [k, v] of Object.entries(value)) out[k] = reveal(v);
    return out as T;
  }
  return value as T;
}

/** True when the value is a secret or holds one. */
export function containsSecrets(value: unknown): boolean {
  if (isSecret(value)) return true;
  if (Array.isArray(value)) return value.some(containsSecrets);
  if (isObject(value)) return Object.values(value).some(containsSecrets);
  return false;
}

/**
 * The engine's `annotateSecrets`, done on the provider side: every output property whose input of the same name
 * was (or held) a secret is returned as a secret.
 */
export function annotateSecrets(outs: Props, ins: Props): Props {
  const result: Props = { ...outs };
  for (const [key, out] of Object.entries(outs)) {
    const input = ins[key];
    if (input === undefined || out === undefined || out === null) continue;
    if (isSecret(input)) result[key] = secret(out);
    else if (isObject(input) && isObject(out) && !isSecret(out) && containsSecrets(input)) {
      result[key] = annotateSecrets(out, input);
    } else if (containsSecrets(input)) result[key] = secret(out);
  }
  return result;
}

export function isObject(value: unknown): value is Props {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Deep equality of plain (revealed) values; `undefined` and `null` are the same; key order is ignored. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === undefined || a === null) return b === undefined || b === null;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) if (!deepEqual(a[k], b[k])) return false;
    return true;
  }
  return a === b;
}

/** Equality of two JSON documents by meaning (what the real provider does for policies and document content). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (typeof a !== "string" || typeof b !== "string") return deepEqual(a, b);
  try {
    return deepEqual(JSON.parse(a), JSON.parse(b));
  } catch {
    return a === b;
  }
}

/** `{k: v}` → `[{Key: k, Value: v}]` for the AWS APIs. */
export function toAwsTags(tags: unknown): { Key: string; Value: string }[] {
  if (!isObject(tags)) return [];
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value: String(Value ?? "") }));
}

export function tagChanges(oldTags: unknown, newTags: unknown): { set: { Key: string; Value: string }[]; remove: string[] } {
  const olds = isObject(oldTags) ? oldTags : {};
  const news = isObject(newTags) ? newTags : {};
  return {
    set: toAwsTags(news).filter((t) => olds[t.Key] !== t.Value),
    remove: Object.keys(olds).filter((k) => !(k in news)),
  };
}
