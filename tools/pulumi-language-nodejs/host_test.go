package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseOptions(t *testing.T) {
	opts, err := parseOptions(nil)
	if err != nil || !opts.typescript || opts.packageManager != "npm" || opts.nodeargs != nil {
		t.Fatalf("defaults: %+v %v", opts, err)
	}
	opts, err = parseOptions(mustStruct(t, map[string]any{
		"typescript": false, "nodeargs": " --import=tsx  --enable-source-maps ", "tsconfig": "tsconfig.pulumi.json",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if opts.typescript || opts.tsconfig != "tsconfig.pulumi.json" ||
		!reflect.DeepEqual(opts.nodeargs, []string{"--import=tsx", "--enable-source-maps"}) {
		t.Fatalf("parsed: %+v", opts)
	}
	if _, err := parseOptions(mustStruct(t, map[string]any{"typescript": "no"})); err == nil {
		t.Fatal("expected an error for a non-boolean typescript option")
	}
}

func TestBuildRunArgs(t *testing.T) {
	req := &pulumirpc.RunRequest{
		MonitorAddress: "127.0.0.1:1000",
		Project:        "proj",
		Stack:          "dev",
		Organization:   "organization",
		DryRun:         true,
		Parallel:       16,
		Args:           []string{"--not-a-run-flag"},
		Info: &pulumirpc.ProgramInfo{
			RootDirectory:    "/p",
			ProgramDirectory: "/p/src",
			EntryPoint:       "index.ts",
		},
	}
	opts := nodeOptions{nodeargs: []string{"--import=tsx"}}
	got := buildRunArgs(req, opts, "/p/node_modules/@pulumi/pulumi/cmd/run", "127.0.0.1:2000", "")
	want := []string{
		"--import=tsx",
		"/p/node_modules/@pulumi/pulumi/cmd/run",
		"--monitor=127.0.0.1:1000",
		"--engine=127.0.0.1:2000",
		"--organization=organization",
		"--project=proj",
		"--root-directory=/p",
		"--stack=dev",
		"--pwd=/p/src",
		"--dry-run",
		"--parallel=16",
		"index.ts",
		"--not-a-run-flag",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("args\n got %q\nwant %q", got, want)
	}

	// No entry point → "." (cmd/run then looks at package.json), no dry-run flag.
	req.Info.EntryPoint, req.DryRun, req.Args = "", false, nil
	got = buildRunArgs(req, nodeOptions{}, "run", "", "")
	if got[len(got)-1] != "." {
		t.Fatalf("expected '.' entry point, got %q", got)
	}
	for _, a := range got {
		if a == "--dry-run" || a == "--engine=" {
			t.Fatalf("unexpected %q in %q", a, got)
		}
	}
}

func TestBuildRunEnv(t *testing.T) {
	env, err := buildRunEnv(&pulumirpc.RunRequest{
		Config:           map[string]string{"proj:name": "x", "aws:region": "eu-west-1"},
		ConfigSecretKeys: []string{"proj:name"},
	}, nodeOptions{typescript: false})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range env {
		for i := range kv {
			if kv[i] == '=' {
				m[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	var cfg map[string]string
	if err := json.Unmarshal([]byte(m["PULUMI_CONFIG"]), &cfg); err != nil || cfg["aws:region"] != "eu-west-1" {
		t.Fatalf("PULUMI_CONFIG=%s (%v)", m["PULUMI_CONFIG"], err)
	}
	if m["PULUMI_CONFIG_SECRET_KEYS"] != `["proj:name"]` || m["PULUMI_NODEJS_TYPESCRIPT"] != "false" {
		t.Fatalf("env: %v", m)
	}
	env, _ = buildRunEnv(&pulumirpc.RunRequest{}, nodeOptions{typescript: true})
	if env[0] != "PULUMI_CONFIG={}" || env[1] != "PULUMI_CONFIG_SECRET_KEYS=[]" {
		t.Fatalf("empty config env: %v", env)
	}
}

func TestRunResponse(t *testing.T) {
	if r := runResponse(nil); r.Error != "" || r.Bail {
		t.Fatalf("success: %v", r)
	}
	exitWith := func(code string) error { return exec.Command("sh", "-c", "exit "+code).Run() }
	if r := runResponse(exitWith("32")); !r.Bail || r.Error != "" {
		t.Fatalf("exit 32 must bail: %v", r)
	}
	if r := runResponse(exitWith("1")); r.Bail || r.Error != "Program exited with non-zero exit code: 1" {
		t.Fatalf("exit 1: %v", r)
	}
	if r := runResponse(errors.New("boom")); r.Error == "" {
		t.Fatal("spawn failure must be an error")
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindPulumiPackages(t *testing.T) {
	root := t.TempDir()
	nm := filepath.Join(root, "node_modules")
	writeJSON(t, filepath.Join(nm, "@pulumi/aws/package.json"), map[string]any{
		"name": "@pulumi/aws", "version": "7.48.0",
		"pulumi": map[string]any{"resource": true, "name": "aws", "version": "7.48.0"},
	})
	writeJSON(t, filepath.Join(nm, "@pulumi/pulumi/package.json"), map[string]any{
		"name": "@pulumi/pulumi", "version": "3.259.0", "pulumi": map[string]any{"comment": "not a plugin"},
	})
	// Name derived from the npm name, version from the package, nested node_modules.
	writeJSON(t, filepath.Join(nm, "app/node_modules/@pulumi/random/package.json"), map[string]any{
		"name": "@pulumi/random", "version": "4.1.0", "pulumi": map[string]any{"resource": true},
	})
	writeJSON(t, filepath.Join(nm, "app/package.json"), map[string]any{"name": "app", "version": "1.0.0"})
	// A parameterized package.
	writeJSON(t, filepath.Join(nm, "netbox/package.json"), map[string]any{
		"name": "netbox", "version": "0.1.0",
		"pulumi": map[string]any{
			"resource": true, "name": "terraform-provider", "version": "0.8.0",
			"parameterization": map[string]any{"name": "netbox", "version": "3.0.0", "value": "eyJ4IjoxfQ=="},
		},
	})
	// Odd "pulumi" value and a broken package.json are ignored.
	writeJSON(t, filepath.Join(nm, "weird/package.json"), map[string]any{"name": "weird", "pulumi": true})
	if err := os.MkdirAll(filepath.Join(nm, "broken"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(nm, "broken/package.json"), []byte("{"), 0o644)
	// A duplicate through a symlink.
	if err := os.Symlink(filepath.Join(nm, "@pulumi/aws"), filepath.Join(nm, "aws-link")); err != nil {
		t.Fatal(err)
	}

	got, err := findPulumiPackages(nm)
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, p := range got {
		s := p.plugin + "@" + p.pluginVersion
		if p.param != nil {
			s += " param " + p.param.Name + "@" + p.param.Version + "=" + string(p.param.Value)
		}
		summary = append(summary, s)
	}
	want := []string{"aws@v7.48.0", "random@v4.1.0", `terraform-provider@v0.8.0 param netbox@v3.0.0={"x":1}`}
	if !reflect.DeepEqual(summary, want) {
		t.Fatalf("got %q\nwant %q", summary, want)
	}

	// requiredPackages finds node_modules from a subdirectory of the project.
	sub := filepath.Join(root, "src", "deep")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	pkgs, err := requiredPackages(sub)
	if err != nil || len(pkgs) != 3 {
		t.Fatalf("requiredPackages: %v %v", pkgs, err)
	}
}

func TestProgramDependencies(t *testing.T) {
	root := t.TempDir()
	writeJSON(t, filepath.Join(root, "package.json"), map[string]any{
		"name":            "p",
		"dependencies":    map[string]string{"@pulumi/pulumi": "^3.0.0", "missing": "^1.0.0"},
		"devDependencies": map[string]string{"typescript": "^5"},
	})
	writeJSON(t, filepath.Join(root, "node_modules/@pulumi/pulumi/package.json"),
		map[string]any{"name": "@pulumi/pulumi", "version": "3.259.0"})
	deps, err := programDependencies(root, false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range deps {
		got[d.Name] = d.Version
	}
	want := map[string]string{"@pulumi/pulumi": "3.259.0", "missing": "^1.0.0", "typescript": "^5"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}
