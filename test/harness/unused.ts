/** A dependency the code under test must never touch: any use fails the test loudly, naming what was used. */
export function unused<T extends object>(name: string): T {
  return new Proxy({} as T, {
    get: (_target, property) => {
      if (property === "then") return undefined;
      throw new Error(`${name}.${String(property)} is not part of this test`);
    },
  });
}
