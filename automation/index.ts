export * from "./cli-environment";
export * from "./errors";
export * from "./settings";
export * from "./stack-name";
export * from "./tenant-stack";
