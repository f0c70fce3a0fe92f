package boundary

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// forbidden are modules an application importing broker and client must
// not have in its module graph.
var forbidden = []string{
	"github.com/nats-io/nats-server/v2",
	"golang.org/x/image",
}

// TestEmbedderModuleGraph creates a module that imports only broker and
// client (ferry replaced by this repository, no workspace), tidies it and
// fails if a forbidden module is in its graph.
func TestEmbedderModuleGraph(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH: cannot check the module graph")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/embedder\n\ngo 1.24\n\n"+
		"require github.com/ferry-io/ferry v0.0.0-00010101000000-000000000000\n\n"+
		"replace github.com/ferry-io/ferry => "+root+"\n")
	write("main.go", "package main\n\nimport (\n\t_ \"github.com/ferry-io/ferry/broker\"\n\t_ \"github.com/ferry-io/ferry/client\"\n)\n\nfunc main() {}\n")
	// ferry's checksums, so that tidy needs no checksum database
	sums, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write("go.sum", string(sums))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	goCmd("mod", "tidy")
	goCmd("build", "-o", os.DevNull, ".")
	mods := goCmd("list", "-m", "all")
	for _, line := range strings.Split(mods, "\n") {
		path, _, _ := strings.Cut(line, " ")
		for _, f := range forbidden {
			if path == f {
				t.Errorf("an application importing broker and client has %s in its module graph:\n%s", line, mods)
			}
		}
	}
	goLine := strings.TrimSpace(goCmd("list", "-m", "-f", "{{.GoVersion}}"))
	t.Logf("the application's go line after tidy: %s; its module graph:\n%s", goLine, mods)
}
