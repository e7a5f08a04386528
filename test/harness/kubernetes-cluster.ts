/**
 * A real Kubernetes control plane for one test file, on 127.0.0.1 only: etcd, kube-apiserver (TLS with a throwaway
 * CA made by `openssl`, client certificates, RBAC), kube-controller-manager, kube-scheduler, and kwok standing in for
 * the kubelets of fake nodes (their pods become Running without containers). The binaries come from
 * scripts/kubernetes-toolchain.sh (.tools/kubernetes/bin); every process runs in its own process group, writes its
 * log into the cluster's temp dir, and is killed by stop(), which also removes that dir.
 *
 * Identities, all by client certificate from the throwaway CA: the harness's admin (group system:masters), the
 * controller manager and the scheduler (their bootstrap RBAC users; controllers use their own service accounts), and
 * kwok (system:masters: it acts for every fake node). Later, an EKS stand-in can add bearer tokens through
 * `tokenWebhookConfigFile` (kube-apiserver's --authentication-token-webhook-config-file).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, openSync, closeSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, REPO_ROOT } from "./moto";
import { waitFor } from "./wait-for";
import { NEW_EC_KEY } from "./https-server";

const run = promisify(execFile);

const TOOLS_DIR = join(REPO_ROOT, ".tools", "kubernetes");
const BIN = join(TOOLS_DIR, "bin");
/** The Pulumi home into which scripts/kubernetes-toolchain.sh installed the provider plugin (resource kubernetes). */
export const KUBERNETES_PLUGIN_HOME = join(TOOLS_DIR, "pulumi-home");
/** The provider version that plugin has: the exact version of @pulumi/kubernetes in package.json. */
export const KUBERNETES_PROVIDER_VERSION = "4.25.0";

const BINARIES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"] as const;
type Component = (typeof BINARIES)[number];
/** Annotation that puts a node under kwok's management. */
const KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node";

const START_TIMEOUT_MS = 90_000;

/**
 * Throws, naming scripts/kubernetes-toolchain.sh, when a binary, kwok's stages or the provider plugin is missing:
 * the tests that need a cluster fail rather than skip.
 */
export function assertKubernetesToolchain(): void {
  const needed = [
    ...BINARIES.map((name) => join(BIN, name)),
    join(BIN, "kwok-stages.yaml"),
    join(KUBERNETES_PLUGIN_HOME, "plugins", `resource-kubernetes-v${KUBERNETES_PROVIDER_VERSION}`, "pulumi-resource-kubernetes"),
  ];
  const missing = needed.filter((file) => !existsSync(file));
  if (missing.length > 0) {
    throw new Error(
      `the Kubernetes test toolchain is missing (${missing.join(", ")}): run \`bash scripts/kubernetes-toolchain.sh\` ` +
        "(after scripts/toolchain.sh; `npm test` runs both)",
    );
  }
}

export interface KubernetesClusterOptions {
  /**
   * A kubeconfig naming a token-review webhook, passed to kube-apiserver as --authentication-token-webhook-config-file
   * (with --authentication-token-webhook-version=v1): bearer tokens are then checked by that webhook (an EKS stand-in
   * verifying `k8s-aws-v1.` tokens).
   */
  tokenWebhookConfigFile?: string;
}

export interface KubernetesResponse {
  status: number;
  /** The parsed JSON body (undefined when empty or not JSON). */
  body: unknown;
}

export interface KubernetesCluster {
  /** `https://127.0.0.1:<port>` */
  server: string;
  /** PEM of the CA that signed the API server's certificate and the client certificates. */
  caPem: string;
  /** A kubeconfig (YAML) for the cluster-admin identity of the harness (group system:masters). */
  adminKubeconfig: string;
  /** A request as the admin, e.g. `request("GET", "/api/v1/namespaces/default")`. */
  request(method: string, path: string, body?: unknown): Promise<KubernetesResponse>;
  /** Creates fake nodes managed by kwok and waits until each is Ready; returns their names. */
  createNodes(names: string[]): Promise<string[]>;
  stop(): Promise<void>;
}

interface Credentials {
  certPem: string;
  keyPem: string;
}

/** Starts the control plane; rejects (after cleaning up) if a part does not come up. */
export async function startKubernetesCluster(options: KubernetesClusterOptions = {}): Promise<KubernetesCluster> {
  assertKubernetesToolchain();
  const dir = await mkdtemp(join(tmpdir(), "mxdr-k8s-"));
  const processes: Running[] = [];
  const stop = async () => {
    // Clients first, the API server next, its storage last.
    await Promise.all(processes.filter((p) => p.name !== "kube-apiserver" && p.name !== "etcd").map((p) => p.stop()));
    for (const name of ["kube-apiserver", "etcd"]) await processes.find((p) => p.name === name)?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const pki = join(dir, "pki");
    await mkdir(pki);
    const ca = await makeCa(pki);
    const [serving, admin, controllerManager, scheduler, kwok] = await Promise.all([
      issue(pki, ca, "kube-apiserver", { cn: "kube-apiserver", server: true }),
      issue(pki, ca, "admin", { cn: "mini-xdr-test-admin", org: "system:masters" }),
      issue(pki, ca, "kube-controller-manager", { cn: "system:kube-controller-manager" }),
      issue(pki, ca, "kube-scheduler", { cn: "system:kube-scheduler" }),
      issue(pki, ca, "kwok", { cn: "mini-xdr-test-kwok", org: "system:masters" }),
      // The service-account token signing key.
      openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", join(pki, "sa.key")]),
    ]);
    await openssl(["ec", "-in", join(pki, "sa.key"), "-pubout", "-out", join(pki, "sa.pub")]);

    // etcd: client and peer on loopback, free ports.
    const ports = new Set<number>();
    while (ports.size < 3) ports.add(await freePort());
    const [etcdPort, etcdPeerPort, apiPort] = [...ports];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = start(dir, "etcd", [
      "--name=default",
      `--data-dir=${join(dir, "etcd-data")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      "--initial-cluster-state=new",
    ]);
    processes.push(etcd);
    await waitUntil("etcd to be healthy", processes, async () => {
      const response = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2_000) });
      return response.ok && ((await response.json()) as { health?: string }).health === "true";
    });

    const server = `https://127.0.0.1:${apiPort}`;
    const apiServer = start(dir, "kube-apiserver", [
      `--etcd-servers=${etcdUrl}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      // The default reconciler refuses a loopback advertise address.
      "--endpoint-reconciler-type=none",
      `--cert-dir=${join(dir, "apiserver-certs")}`,
      `--tls-cert-file=${serving.certFile}`,
      `--tls-private-key-file=${serving.keyFile}`,
      `--client-ca-file=${ca.certFile}`,
      "--authorization-mode=Node,RBAC",
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${join(pki, "sa.pub")}`,
      `--service-account-signing-key-file=${join(pki, "sa.key")}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      // The agent's DaemonSet asks for hostPID.
      "--allow-privileged=true",
      "--profiling=false",
      ...(options.tokenWebhookConfigFile
        ? [`--authentication-token-webhook-config-file=${options.tokenWebhookConfigFile}`, "--authentication-token-webhook-version=v1"]
        : []),
    ]);
    processes.push(apiServer);

    const adminCredentials = { certPem: await readFile(admin.certFile, "utf8"), keyPem: await readFile(admin.keyFile, "utf8") };
    const request = (method: string, path: string, body?: unknown) => kubernetesRequest(server, ca.pem, adminCredentials, method, path, body);
    await waitUntil("kube-apiserver to be ready (/readyz)", processes, async () => (await request("GET", "/readyz")).status === 200);

    const kubeconfigFile = async (name: string, files: IssuedFiles) => {
      const file = join(dir, `${name}.kubeconfig`);
      const credentials = { certPem: await readFile(files.certFile, "utf8"), keyPem: await readFile(files.keyFile, "utf8") };
      await writeFile(file, kubeconfig(server, ca.pem, name, credentials), { mode: 0o600 });
      return file;
    };
    const controllerManagerConfig = await kubeconfigFile("kube-controller-manager", controllerManager);
    const schedulerConfig = await kubeconfigFile("kube-scheduler", scheduler);
    const kwokConfig = await kubeconfigFile("kwok", kwok);

    processes.push(
      start(dir, "kube-controller-manager", [
        `--kubeconfig=${controllerManagerConfig}`,
        `--authentication-kubeconfig=${controllerManagerConfig}`,
        `--authorization-kubeconfig=${controllerManagerConfig}`,
        "--leader-elect=false",
        "--secure-port=0", // no HTTPS endpoint of its own: readiness is read through the API server
        "--use-service-account-credentials=true",
        `--service-account-private-key-file=${join(pki, "sa.key")}`,
        `--root-ca-file=${ca.certFile}`,
        "--profiling=false",
      ]),
      start(dir, "kube-scheduler", [
        `--kubeconfig=${schedulerConfig}`,
        `--authentication-kubeconfig=${schedulerConfig}`,
        `--authorization-kubeconfig=${schedulerConfig}`,
        "--leader-elect=false",
        "--secure-port=0",
        "--profiling=false",
      ]),
      start(dir, "kwok", [
        `--kubeconfig=${kwokConfig}`,
        `--config=${join(BIN, "kwok-stages.yaml")}`,
        "--manage-all-nodes=false",
        `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
        // Node and pod addresses are only data here (no kubelet serves them); the nodes' is loopback.
        "--node-ip=127.0.0.1",
        "--node-port=0",
        "--cidr=10.0.0.0/24",
      ]),
    );
    // The controller manager is working once its service-account controller made `default` in namespace default.
    await waitUntil(
      "kube-controller-manager to create the default service account",
      processes,
      async () => (await request("GET", "/api/v1/namespaces/default/serviceaccounts/default")).status === 200,
    );

    const createNodes = async (names: string[]) => {
      for (const name of names) {
        const created = await request("POST", "/api/v1/nodes", fakeNode(name));
        if (created.status !== 201) throw new Error(`creating node ${name}: HTTP ${created.status} ${JSON.stringify(created.body)}`);
      }
      await waitUntil(`kwok to make nodes ${names.join(", ")} Ready`, processes, async () => {
        for (const name of names) {
          const node = (await request("GET", `/api/v1/nodes/${name}`)).body as NodeStatus | undefined;
          if (!node?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) return false;
        }
        return true;
      });
      return names;
    };

    return {
      server,
      caPem: ca.pem,
      adminKubeconfig: kubeconfig(server, ca.pem, "mini-xdr-test-admin", adminCredentials),
      request,
      createNodes,
      stop,
    };
  } catch (error) {
    const logs = await Promise.all(processes.map((p) => p.logTail()));
    await stop();
    throw new Error(`${(error as Error).message}\n${logs.filter(Boolean).join("\n")}`, { cause: error });
  }
}

/** Polls `probe` (a throw counts as "not yet") until it answers true; fails at once when one of `parts` has exited. */
async function waitUntil(what: string, parts: Running[], probe: () => Promise<boolean>): Promise<void> {
  await waitFor(
    what,
    async () => {
      for (const part of parts) part.assertRunning();
      return probe().catch(() => false);
    },
    { timeoutMs: START_TIMEOUT_MS, intervalMs: 200 },
  );
}

interface NodeStatus {
  status?: { conditions?: { type: string; status: string }[] };
}

function fakeNode(name: string) {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      annotations: { [KWOK_NODE_ANNOTATION]: "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/role": "agent",
        type: "kwok",
      },
    },
    status: {
      allocatable: { cpu: "8", memory: "32Gi", pods: "110" },
      capacity: { cpu: "8", memory: "32Gi", pods: "110" },
      nodeInfo: { architecture: "amd64", operatingSystem: "linux", kubeletVersion: "fake", kubeProxyVersion: "fake" },
    },
  };
}

// ----------------------------------------------------------------------------------------
// Processes

interface Running {
  name: Component;
  assertRunning(): void;
  logTail(): Promise<string>;
  stop(): Promise<void>;
}

function start(dir: string, name: Component, args: string[]): Running {
  const logFile = join(dir, `${name}.log`);
  const log = openSync(logFile, "a");
  // Own process group, so stop() takes down anything it forks too.
  const child: ChildProcess = spawn(join(BIN, name), args, { cwd: dir, detached: true, stdio: ["ignore", log, log] });
  closeSync(log);
  child.unref();
  let exited: string | undefined;
  child.once("exit", (code, signal) => {
    exited = `${name} exited with ${signal ?? code}`;
  });
  child.once("error", (error) => {
    exited = `${name} failed to start: ${error.message}`;
  });
  const logTail = async () => {
    const text = await readFile(logFile, "utf8").catch(() => "");
    return text ? `--- ${name} (last lines of its log) ---\n${text.split("\n").slice(-25).join("\n")}` : "";
  };
  return {
    name,
    assertRunning() {
      if (exited) throw new Error(exited);
    },
    logTail,
    stop: () => stopProcessGroup(child),
  };
}

async function stopProcessGroup(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const pid = child.pid;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const timedOut = await Promise.race([exited.then(() => false), sleep(10_000).then(() => true)]);
  if (timedOut) {
    signal("SIGKILL");
    await Promise.race([exited, sleep(2_000)]);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ----------------------------------------------------------------------------------------
// Certificates (openssl) and kubeconfigs

interface IssuedFiles {
  certFile: string;
  keyFile: string;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run("openssl", args, { timeout: 30_000 });
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === "ENOENT") throw new Error("openssl is not on PATH: the Kubernetes harness makes its CA with it (apt-get install openssl)");
    throw new Error(`openssl ${args[0]} failed: ${err.stderr ?? err.message}`);
  }
}

async function makeCa(pki: string): Promise<IssuedFiles & { pem: string }> {
  const certFile = join(pki, "ca.crt");
  const keyFile = join(pki, "ca.key");
  await openssl([
    "req",
    "-x509",
    ...NEW_EC_KEY,
    "-subj",
    "/CN=mini-xdr-test-kubernetes-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    "-days",
    "1",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ]);
  return { certFile, keyFile, pem: await readFile(certFile, "utf8") };
}

/** A key and a certificate signed by the CA: a server's for 127.0.0.1, or a client's (CN = user, O = group). */
async function issue(
  pki: string,
  ca: IssuedFiles,
  name: string,
  { cn, org, server = false }: { cn: string; org?: string; server?: boolean },
): Promise<IssuedFiles> {
  const keyFile = join(pki, `${name}.key`);
  const csrFile = join(pki, `${name}.csr`);
  const certFile = join(pki, `${name}.crt`);
  const extFile = join(pki, `${name}.ext`);
  await openssl(["req", "-new", ...NEW_EC_KEY, "-subj", `/CN=${cn}${org ? `/O=${org}` : ""}`, "-keyout", keyFile, "-out", csrFile]);
  const extensions = server
    ? [
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc",
      ]
    : ["keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=clientAuth"];
  await writeFile(extFile, `${["basicConstraints=CA:FALSE", ...extensions].join("\n")}\n`);
  await openssl([
    "x509",
    "-req",
    "-in",
    csrFile,
    "-CA",
    ca.certFile,
    "-CAkey",
    ca.keyFile,
    // A random serial each: certificates are issued in parallel, so no shared serial file.
    "-set_serial",
    `0x${randomBytes(8).toString("hex")}`,
    "-days",
    "1",
    "-extfile",
    extFile,
    "-out",
    certFile,
  ]);
  return { certFile, keyFile };
}

function base64(text: string): string {
  return Buffer.from(text).toString("base64");
}

function kubeconfig(server: string, caPem: string, user: string, credentials: Credentials): string {
  // JSON is YAML: no YAML writer needed.
  return JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "mini-xdr-test", cluster: { server, "certificate-authority-data": base64(caPem) } }],
      users: [{ name: user, user: { "client-certificate-data": base64(credentials.certPem), "client-key-data": base64(credentials.keyPem) } }],
      contexts: [{ name: "mini-xdr-test", context: { cluster: "mini-xdr-test", user } }],
      "current-context": "mini-xdr-test",
    },
    null,
    2,
  );
}

function kubernetesRequest(
  server: string,
  caPem: string,
  credentials: Credentials,
  method: string,
  path: string,
  body?: unknown,
): Promise<KubernetesResponse> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      new URL(path, server),
      {
        method,
        ca: caPem,
        cert: credentials.certPem,
        key: credentials.keyPem,
        headers: { accept: "application/json", ...(payload ? { "content-type": "application/json" } : {}) },
        timeout: 10_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          resolve({ status: response.statusCode ?? 0, body: parsed });
        });
        response.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
    req.on("error", reject);
    req.end(payload);
  });
}
