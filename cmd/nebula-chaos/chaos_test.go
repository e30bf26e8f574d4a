//go:build chaos

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestChaos builds nebula and runs the harness for 45 s with every fault
// (partitions only as root with iproute2; they are skipped elsewhere). It
// takes about a minute and a half:
//
//	go test -tags chaos -run TestChaos -v ./cmd/nebula-chaos
func TestChaos(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "nebula")
	build := exec.Command("go", "build", "-o", bin, "../nebula")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building nebula: %v\n%s", err, out)
	}
	// The report outlives the test when a check fails.
	out, err := os.MkdirTemp("", "nebula-chaos-report-")
	if err != nil {
		t.Fatal(err)
	}
	var report bytes.Buffer
	code, err := runChaos(context.Background(), options{
		nebula:     bin,
		duration:   45 * time.Second,
		clients:    8,
		faults:     "all",
		interval:   5 * time.Second,
		hold:       3 * time.Second,
		timeout:    2 * time.Second,
		think:      10 * time.Millisecond,
		settle:     60 * time.Second,
		linTimeout: 60 * time.Second,
		out:        out,
		quiet:      !testing.Verbose(),
	}, &report)
	t.Logf("report:\n%s", report.String())
	if err != nil {
		t.Fatalf("the harness could not run (exit %d): %v", code, err)
	}
	if code != 0 {
		t.Fatalf("violations found (exit %d); see the report above and %s", code, out)
	}
	os.RemoveAll(out)
}
