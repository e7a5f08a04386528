package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	// Where the Node.js half of the SDK lives, relative to a directory that has node_modules.
	runScriptRel = "node_modules/@pulumi/pulumi/cmd/run"

	// @pulumi/pulumi/cmd/run exits with this code when it has already reported the error
	// to the user through the engine's log (see nodeJSProcessExitedAfterLoggingUserActionableMessage
	// in cmd/run/index.js). We then answer Run with Bail, so the engine stops without
	// printing a second, generic "program exited with code N" error.
	exitCodeErrorAlreadyReported = 32
)

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	nodeBin string
	tracing string

	mu            sync.Mutex
	engineAddress string
}

func newHost(nodeBin, engineAddress, tracing string) *host {
	return &host{nodeBin: nodeBin, engineAddress: engineAddress, tracing: tracing}
}

func (h *host) engine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

// Handshake is the engine's first call. We only need the engine address from it; it is
// the same one we got on the command line unless the engine attached to us by port.
func (h *host) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if addr := req.GetEngineAddress(); addr != "" {
		h.mu.Lock()
		h.engineAddress = addr
		h.mu.Unlock()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: pluginVersion()}, nil
}

// ---------------------------------------------------------------------------------------
// Runtime options (the `runtime.options` map of Pulumi.yaml, sent as ProgramInfo.Options).

type nodeOptions struct {
	// typescript: let @pulumi/pulumi register ts-node itself. Defaults to true, as in the
	// official host. Projects that bring their own loader (e.g. `nodeargs: --import=tsx`)
	// set it to false.
	typescript bool
	// tsconfig: path of the tsconfig file handed to ts-node (PULUMI_NODEJS_TSCONFIG_PATH).
	tsconfig string
	// nodeargs: extra arguments for `node`, placed before the run script. Split on
	// whitespace (no shell quoting), like the official host.
	nodeargs []string
	// packagemanager: npm (default), yarn, pnpm or bun; only used by InstallDependencies.
	packageManager string
}

func parseOptions(s *structpb.Struct) (nodeOptions, error) {
	opts := nodeOptions{typescript: true, packageManager: "npm"}
	for key, value := range s.GetFields() {
		switch key {
		case "typescript":
			b, ok := value.GetKind().(*structpb.Value_BoolValue)
			if !ok {
				return opts, fmt.Errorf("runtime option 'typescript' must be a boolean")
			}
			opts.typescript = b.BoolValue
		case "tsconfig":
			str, ok := value.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return opts, fmt.Errorf("runtime option 'tsconfig' must be a string")
			}
			opts.tsconfig = str.StringValue
		case "nodeargs":
			str, ok := value.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return opts, fmt.Errorf("runtime option 'nodeargs' must be a string")
			}
			opts.nodeargs = strings.Fields(str.StringValue)
		case "packagemanager":
			str, ok := value.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return opts, fmt.Errorf("runtime option 'packagemanager' must be a string")
			}
			switch str.StringValue {
			case "", "auto":
			case "npm", "yarn", "pnpm", "bun":
				opts.packageManager = str.StringValue
			default:
				return opts, fmt.Errorf("unknown runtime option 'packagemanager': %q", str.StringValue)
			}
		default:
			// Unknown options are ignored, as the official host does for forward compatibility.
			logging.V(5).Infof("ignoring unknown nodejs runtime option %q", key)
		}
	}
	return opts, nil
}

// programDir returns the directory of the program: ProgramInfo's when present (all
// current engines send it), else the deprecated field the request carried.
func programDir(info *pulumirpc.ProgramInfo, legacy string) string {
	if d := info.GetProgramDirectory(); d != "" {
		return d
	}
	if legacy != "" {
		return legacy
	}
	wd, _ := os.Getwd()
	return wd
}

// findUp returns the first directory at or above start containing rel, or "".
func findUp(start, rel string) string {
	dir, err := filepath.Abs(start)
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, rel)); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// ---------------------------------------------------------------------------------------
// Run

// buildRunArgs builds the node command line for @pulumi/pulumi/cmd/run:
//
//	node <nodeargs...> <run script> --monitor=… [flags] <entry point> <program args...>
//
// cmd/run parses its flags with minimist and stopEarly, so every flag must come before
// the entry point and everything after the entry point reaches the program as its argv.
// The `--k=v` form keeps values that start with '-' unambiguous.
func buildRunArgs(req *pulumirpc.RunRequest, opts nodeOptions, runScript, engineAddress, tracing string) []string {
	args := append([]string{}, opts.nodeargs...)
	args = append(args, runScript)
	flag := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name+"="+value)
		}
	}
	flag("monitor", req.GetMonitorAddress())
	flag("engine", engineAddress)
	flag("organization", req.GetOrganization())
	flag("project", req.GetProject())
	flag("root-directory", req.GetInfo().GetRootDirectory())
	flag("stack", req.GetStack())
	flag("pwd", programDir(req.GetInfo(), req.GetPwd()))
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	if p := req.GetParallel(); p != 0 {
		flag("parallel", strconv.Itoa(int(p)))
	}
	flag("tracing", tracing)

	// The entry point is relative to --pwd (cmd/run chdirs there first). "." means "use
	// package.json's exports/main, else index.js", which cmd/run resolves itself.
	entry := req.GetInfo().GetEntryPoint()
	if entry == "" {
		entry = req.GetProgram() //nolint:staticcheck // deprecated field, still sent by old engines
	}
	if entry == "" {
		entry = "."
	}
	args = append(args, entry)
	return append(args, req.GetArgs()...)
}

// buildRunEnv returns the environment additions for the program. The Node SDK reads its
// configuration from the environment, not from flags:
//   - PULUMI_CONFIG: JSON object of "<namespace>:<key>" → string value (the SDK also
//     accepts the legacy "<namespace>:config:<key>" form; we pass the keys as the engine
//     sends them).
//   - PULUMI_CONFIG_SECRET_KEYS: JSON array of the keys whose values are secrets, so
//     config.get*() wraps them as secret outputs.
//   - PULUMI_NODEJS_TYPESCRIPT / PULUMI_NODEJS_TSCONFIG_PATH: whether cmd/run registers
//     ts-node, and with which tsconfig.
func buildRunEnv(req *pulumirpc.RunRequest, opts nodeOptions) ([]string, error) {
	config := req.GetConfig()
	if config == nil {
		config = map[string]string{}
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("serializing configuration: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretsJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("serializing configuration secret keys: %w", err)
	}
	env := []string{
		"PULUMI_CONFIG=" + string(configJSON),
		"PULUMI_CONFIG_SECRET_KEYS=" + string(secretsJSON),
		"PULUMI_NODEJS_TYPESCRIPT=" + strconv.FormatBool(opts.typescript),
	}
	if opts.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+opts.tsconfig)
	}
	return env, nil
}

// Run executes the program and waits for it. Program failures are not gRPC errors: they
// are reported in RunResponse (Error, or Bail when the SDK already told the user).
func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if req.GetAttachDebugger() {
		return &pulumirpc.RunResponse{Error: "attaching a debugger is not supported by this Node.js language host"}, nil
	}
	opts, err := parseOptions(req.GetInfo().GetOptions())
	if err != nil {
		return nil, err
	}
	dir := programDir(req.GetInfo(), req.GetPwd())

	runScript := os.Getenv("PULUMI_LANGUAGE_NODEJS_RUN_PATH") // override, as the official host allows
	if runScript == "" {
		root := findUp(dir, runScriptRel)
		if root == "" {
			return &pulumirpc.RunResponse{Error: "It looks like the Pulumi SDK has not been installed " +
				"(no node_modules/@pulumi/pulumi above " + dir + "). Have you run npm install?"}, nil
		}
		runScript = filepath.Join(root, runScriptRel)
	}

	args := buildRunArgs(req, opts, runScript, h.engine(), h.tracing)
	extraEnv, err := buildRunEnv(req, opts)
	if err != nil {
		return nil, err
	}
	logging.V(5).Infof("language host launching: %s %s", h.nodeBin, strings.Join(args, " "))

	// The program's stdout/stderr are ours: the engine relays them to the user. If the
	// engine abandons the call, the context is cancelled and node is killed.
	cmd := exec.CommandContext(ctx, h.nodeBin, args...)
	cmd.Dir = dir
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), extraEnv...) // later entries win over inherited ones

	return runResponse(cmd.Run()), nil
}

// runResponse maps node's exit status to what the engine expects.
func runResponse(err error) *pulumirpc.RunResponse {
	if err == nil {
		return &pulumirpc.RunResponse{}
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}
	}
	if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.Signaled() {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited unexpectedly: %v", status.Signal())}
	}
	switch code := exitErr.ExitCode(); code {
	case exitCodeErrorAlreadyReported:
		return &pulumirpc.RunResponse{Bail: true}
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", code)}
	}
}

// ---------------------------------------------------------------------------------------
// Plugins and packages

func (h *host) GetRequiredPackages(_ context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	pkgs, err := requiredPackages(programDir(req.GetInfo(), ""))
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, p := range pkgs {
		resp.Packages = append(resp.Packages, p.toPackageDependency())
	}
	return resp, nil
}

func (h *host) GetRequiredPlugins(_ context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	pkgs, err := requiredPackages(programDir(req.GetInfo(), req.GetPwd())) //nolint:staticcheck
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	seen := map[string]bool{}
	for _, p := range pkgs {
		if key := p.plugin + "@" + p.pluginVersion; !seen[key] {
			seen[key] = true
			resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
				Name: p.plugin, Kind: "resource", Version: p.pluginVersion, Server: p.server,
			})
		}
	}
	return resp, nil
}

// requiredPackages scans the node_modules tree nearest to the program directory.
func requiredPackages(dir string) ([]pulumiPackage, error) {
	root := findUp(dir, "node_modules")
	if root == "" {
		return nil, nil // nothing installed yet, so nothing required yet
	}
	return findPulumiPackages(filepath.Join(root, "node_modules"))
}

// GetProgramDependencies lists the package.json dependencies with their installed
// versions (or every installed package when transitive dependencies are asked for).
func (h *host) GetProgramDependencies(_ context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	dir := programDir(req.GetInfo(), req.GetPwd()) //nolint:staticcheck
	deps, err := programDependencies(dir, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}

// ---------------------------------------------------------------------------------------
// Dependencies installation

// InstallDependencies runs `<packagemanager> install` in the package root unless
// node_modules is already there, streaming the tool's output back to the engine.
func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	opts, err := parseOptions(req.GetInfo().GetOptions())
	if err != nil {
		return err
	}
	dir := programDir(req.GetInfo(), req.GetDirectory()) //nolint:staticcheck
	pkgRoot := findUp(dir, "package.json")
	if pkgRoot == "" {
		return fmt.Errorf("no package.json found at or above %s", dir)
	}
	stdout := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	}}
	stderr := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	}}
	if _, err := os.Stat(filepath.Join(pkgRoot, "node_modules")); err == nil {
		_, err := fmt.Fprintf(stdout, "node_modules already present in %s; skipping %s install\n",
			pkgRoot, opts.packageManager)
		return err
	}

	bin, err := exec.LookPath(opts.packageManager)
	if err != nil {
		return fmt.Errorf("could not find %s on the $PATH: %w", opts.packageManager, err)
	}
	// Both writers share one gRPC stream, and Send is not safe for concurrent use.
	var mu sync.Mutex
	stdout.mu, stderr.mu = &mu, &mu
	cmd := exec.CommandContext(server.Context(), bin, "install")
	cmd.Dir = pkgRoot
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("`%s install` in %s failed: %w", opts.packageManager, pkgRoot, err)
	}
	return nil
}

// streamWriter forwards each Write to the engine as one stream message.
type streamWriter struct {
	mu   *sync.Mutex
	send func([]byte) error
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if w.mu != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
	}
	if err := w.send(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

var _ io.Writer = (*streamWriter)(nil)

// ---------------------------------------------------------------------------------------
// Informational calls

func (h *host) About(ctx context.Context, _ *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	out, err := exec.CommandContext(ctx, h.nodeBin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("running %s --version: %w", h.nodeBin, err)
	}
	return &pulumirpc.AboutResponse{
		Executable: h.nodeBin,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "v"),
	}, nil
}

// RuntimeOptionsPrompts: `pulumi new` asks nothing extra for this host.
func (h *host) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}
