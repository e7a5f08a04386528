// pulumi-language-nodejs is a compact language host for Pulumi programs written in
// JavaScript/TypeScript and run by Node.js.
//
// The official host (module github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3)
// cannot be fetched from the module proxy available to this project, so this is our own
// implementation of the same gRPC protocol (pulumirpc.LanguageRuntime), built against
// github.com/pulumi/pulumi/sdk/v3 at the same version as the CLI.
//
// The engine starts a language plugin as
//
//	pulumi-language-nodejs [--logtostderr] [-v=N] [--tracing <endpoint>] <engine-address>
//
// (see sdk/go/common/resource/plugin: buildPluginArguments and buildArgsForNewPlugin),
// in the program directory, and reads the gRPC port from the first line of our stdout.
// Everything else we or our children print to stdout/stderr afterwards is relayed by the
// engine to the user, which is how `console.log` in a program reaches the display.
//
// The program itself is executed by the Node.js half of the SDK,
// `@pulumi/pulumi/cmd/run`, which connects back to the engine's resource monitor.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// defaultVersion is reported when the build did not set
// github.com/pulumi/pulumi/sdk/v3/go/common/version.Version with -ldflags -X.
const defaultVersion = "v3.259.0"

func pluginVersion() string {
	if version.Version != "" {
		return version.Version
	}
	return defaultVersion
}

func main() {
	// `-v` and `--logtostderr` are already registered on flag.CommandLine by the SDK's
	// logging package (it reuses glog's flag names); registering them again would panic.
	tracing := flag.String("tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint")
	showVersion := flag.Bool("version", false, "Print the plugin version and exit")
	flag.Parse()

	if *showVersion {
		fmt.Println(pluginVersion())
		return
	}

	logging.InitLogging(false, 0, false)
	cmdutil.InitTracing("pulumi-language-nodejs", "pulumi-language-nodejs", *tracing)

	// The engine address is the last positional argument. It is optional: when the
	// engine attaches to an already-running host (PULUMI_DEBUG_LANGUAGES) it sends the
	// address in Handshake instead.
	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[len(args)-1]
	}

	nodeBin, err := exec.LookPath("node")
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not find node on the $PATH: %w", err))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The engine stops plugins by sending SIGINT to the plugin's process group and waits
	// up to 5s before SIGKILL. Handle the signal explicitly: a process started with SIGINT
	// ignored (e.g. a background job of a non-interactive shell) would otherwise keep
	// ignoring it and every plugin shutdown would cost those 5 seconds.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() { <-signals; cancel() }()

	// If the engine goes away without killing us (it normally kills our whole process
	// group), stop serving so we do not linger as an orphan.
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start health check for engine %s: %w", engineAddress, err))
		}
	}

	// ServeWithOptions stops gracefully when its Cancel channel is closed.
	stop := make(chan bool)
	go func() { <-ctx.Done(); close(stop) }()

	host := newHost(nodeBin, engineAddress, *tracing)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}

	// The port on stdout is the whole of the plugin start-up protocol.
	fmt.Fprintf(os.Stdout, "%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}
