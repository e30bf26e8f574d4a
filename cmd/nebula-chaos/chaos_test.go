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
// takes about a minute and a half and is part of the default test run;
// -short skips it. NEBULA_CHAOS_DURATION runs it longer:
//
//	NEBULA_CHAOS_DURATION=5m go test -run TestChaos -v -timeout 30m ./cmd/nebula-chaos
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault run takes a minute and a half; not with -short")
	}
	duration := 45 * time.Second
	if v := os.Getenv("NEBULA_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("NEBULA_CHAOS_DURATION=%q: want a positive duration such as 5m", v)
		}
		duration = d
	}
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
		duration:   duration,
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
