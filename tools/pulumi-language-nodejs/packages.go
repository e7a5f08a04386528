package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// A Pulumi provider SDK on npm declares its plugin in package.json, e.g. @pulumi/aws:
//
//	"pulumi": { "resource": true, "name": "aws", "version": "7.48.0" }
//
// Optional: "server" (plugin download URL) and, for parameterized providers,
// "parameterization": { "name", "version", "value" (base64) }. @pulumi/pulumi itself has a
// "pulumi" object without "resource" and is therefore not a plugin.
type packageJSON struct {
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	Pulumi       json.RawMessage   `json:"pulumi"`
	Dependencies map[string]string `json:"dependencies"`
	DevDeps      map[string]string `json:"devDependencies"`
}

type pulumiField struct {
	Resource         bool   `json:"resource"`
	Name             string `json:"name"`
	Version          string `json:"version"`
	Server           string `json:"server"`
	Parameterization *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Value   string `json:"value"` // base64
	} `json:"parameterization"`
}

type pulumiPackage struct {
	npmName       string
	plugin        string // plugin name, e.g. "aws"
	pluginVersion string // "v"-prefixed semver
	server        string
	param         *pulumirpc.PackageParameterization
}

func (p pulumiPackage) toPackageDependency() *pulumirpc.PackageDependency {
	return &pulumirpc.PackageDependency{
		Name:             p.plugin,
		Kind:             "resource",
		Version:          p.pluginVersion,
		Server:           p.server,
		Parameterization: p.param,
	}
}

// parsePulumiPackage returns the plugin a package.json declares, if any.
func parsePulumiPackage(data []byte) (*pulumiPackage, error) {
	var pkg packageJSON
	if err := json.Unmarshal(data, &pkg); err != nil {
		return nil, err
	}
	if len(pkg.Pulumi) == 0 {
		return nil, nil
	}
	var field pulumiField
	if err := json.Unmarshal(pkg.Pulumi, &field); err != nil || !field.Resource {
		return nil, nil //nolint:nilerr // a "pulumi" key of another shape is not a plugin declaration
	}

	name := field.Name
	if name == "" {
		// Official convention: "@pulumi/foo" → "foo"; other scopes lose only the "@".
		name = strings.TrimPrefix(pkg.Name, "@pulumi/")
		name = strings.TrimPrefix(name, "@")
	}
	if name == "" {
		return nil, fmt.Errorf("package declares a Pulumi plugin but has no name")
	}
	version := field.Version
	if version == "" {
		version = pkg.Version
	}
	if version == "" {
		return nil, fmt.Errorf("package %s declares a Pulumi plugin but has no version", pkg.Name)
	}
	if !strings.HasPrefix(version, "v") {
		version = "v" + version
	}

	out := &pulumiPackage{npmName: pkg.Name, plugin: name, pluginVersion: version, server: field.Server}
	if p := field.Parameterization; p != nil {
		value, err := base64.StdEncoding.DecodeString(p.Value)
		if err != nil {
			return nil, fmt.Errorf("package %s: parameterization value is not base64: %w", pkg.Name, err)
		}
		pv := p.Version
		if pv != "" && !strings.HasPrefix(pv, "v") {
			pv = "v" + pv
		}
		out.param = &pulumirpc.PackageParameterization{Name: p.Name, Version: pv, Value: value}
	}
	return out, nil
}

// findPulumiPackages walks a node_modules tree (scoped packages and nested node_modules
// included, symlinks followed once) and returns every Pulumi plugin package, deduplicated
// and sorted. Unreadable or malformed package.json files are skipped with a log line
// rather than failing the whole deployment.
func findPulumiPackages(nodeModules string) ([]pulumiPackage, error) {
	var found []pulumiPackage
	seenDirs := map[string]bool{}
	seenPkgs := map[string]bool{}

	var walk func(dir string) error
	var visit func(pkgDir string)

	visit = func(pkgDir string) {
		real, err := filepath.EvalSymlinks(pkgDir)
		if err != nil || seenDirs[real] {
			return
		}
		seenDirs[real] = true
		if info, err := os.Stat(real); err != nil || !info.IsDir() {
			return
		}
		if data, err := os.ReadFile(filepath.Join(real, "package.json")); err == nil {
			pkg, err := parsePulumiPackage(data)
			if err != nil {
				logging.V(5).Infof("skipping %s/package.json: %v", pkgDir, err)
			} else if pkg != nil {
				key := pkg.plugin + "@" + pkg.pluginVersion
				if pkg.param != nil {
					key += "/" + pkg.param.Name + "@" + pkg.param.Version
				}
				if !seenPkgs[key] {
					seenPkgs[key] = true
					found = append(found, *pkg)
				}
			}
		}
		nested := filepath.Join(real, "node_modules")
		if _, err := os.Stat(nested); err == nil {
			_ = walk(nested)
		}
	}

	walk = func(dir string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") { // .bin, .cache, .package-lock.json, ...
				continue
			}
			path := filepath.Join(dir, name)
			if strings.HasPrefix(name, "@") { // a scope: its children are the packages
				scoped, err := os.ReadDir(path)
				if err != nil {
					continue
				}
				for _, s := range scoped {
					visit(filepath.Join(path, s.Name()))
				}
				continue
			}
			visit(path)
		}
		return nil
	}

	if err := walk(nodeModules); err != nil {
		return nil, fmt.Errorf("reading %s: %w", nodeModules, err)
	}
	sort.Slice(found, func(i, j int) bool {
		if found[i].plugin != found[j].plugin {
			return found[i].plugin < found[j].plugin
		}
		return found[i].pluginVersion < found[j].pluginVersion
	})
	return found, nil
}

// programDependencies reports the dependencies of the nearest package.json with the
// versions actually installed (falling back to the declared range when not installed).
// With transitive set, it reports every package in node_modules instead.
func programDependencies(dir string, transitive bool) ([]*pulumirpc.DependencyInfo, error) {
	root := findUp(dir, "package.json")
	if root == "" {
		return nil, fmt.Errorf("no package.json found at or above %s", dir)
	}
	data, err := os.ReadFile(filepath.Join(root, "package.json"))
	if err != nil {
		return nil, err
	}
	var pkg packageJSON
	if err := json.Unmarshal(data, &pkg); err != nil {
		return nil, fmt.Errorf("parsing %s/package.json: %w", root, err)
	}

	installedVersion := func(name string) string {
		d := findUp(root, filepath.Join("node_modules", name, "package.json"))
		if d == "" {
			return ""
		}
		b, err := os.ReadFile(filepath.Join(d, "node_modules", name, "package.json"))
		if err != nil {
			return ""
		}
		var p packageJSON
		if json.Unmarshal(b, &p) != nil {
			return ""
		}
		return p.Version
	}

	var names []string
	declared := map[string]string{}
	if transitive {
		if nm := findUp(root, "node_modules"); nm != "" {
			for _, n := range listInstalled(filepath.Join(nm, "node_modules")) {
				names = append(names, n)
			}
		}
	} else {
		for n, v := range pkg.Dependencies {
			declared[n] = v
			names = append(names, n)
		}
		for n, v := range pkg.DevDeps {
			if _, ok := declared[n]; !ok {
				declared[n] = v
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)

	deps := make([]*pulumirpc.DependencyInfo, 0, len(names))
	for _, n := range names {
		v := installedVersion(n)
		if v == "" {
			v = declared[n]
		}
		deps = append(deps, &pulumirpc.DependencyInfo{Name: n, Version: v})
	}
	return deps, nil
}

// listInstalled returns the names of the top-level packages of a node_modules directory.
func listInstalled(nodeModules string) []string {
	var names []string
	entries, _ := os.ReadDir(nodeModules)
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if strings.HasPrefix(name, "@") {
			scoped, _ := os.ReadDir(filepath.Join(nodeModules, name))
			for _, s := range scoped {
				names = append(names, name+"/"+s.Name())
			}
			continue
		}
		names = append(names, name)
	}
	return names
}
