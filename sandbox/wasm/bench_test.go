package wasm

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nebula-engine/nebula/examples/actions/wordcount/count"
)

// benchText is a paragraph of about 1 KiB: the size of a typical node's
// input.
var benchText = strings.Repeat("The quick brown fox jumps over the lazy dog; the dog sleeps on. ", 16)

func benchParams(b *testing.B) json.RawMessage {
	p, err := json.Marshal(map[string]string{"text": benchText})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkWordcountCompileCold is a node's first run of a module: parse,
// instrument for fuel and compile to machine code, with no cache.
func BenchmarkWordcountCompileCold(b *testing.B) {
	mod := program(b, "wordcount")
	ctx := context.Background()
	for b.Loop() {
		r, err := NewRuntime(ctx, Config{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Compile(ctx, mod, nil); err != nil {
			b.Fatal(err)
		}
		r.Close(ctx)
	}
}

// BenchmarkWordcountCompileDiskCache is a restarted node: the compiled
// code is read back from the cache directory.
func BenchmarkWordcountCompileDiskCache(b *testing.B) {
	mod := program(b, "wordcount")
	ctx := context.Background()
	dir := b.TempDir()
	warm, err := NewRuntime(ctx, Config{CacheDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := warm.Compile(ctx, mod, nil); err != nil {
		b.Fatal(err)
	}
	warm.Close(ctx)
	for b.Loop() {
		r, err := NewRuntime(ctx, Config{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Compile(ctx, mod, nil); err != nil {
			b.Fatal(err)
		}
		r.Close(ctx)
	}
}

// BenchmarkWordcountRun is a warm start: the module is compiled, and each
// run is a fresh instance (memory, WASI, Go runtime start) plus the work.
func BenchmarkWordcountRun(b *testing.B) {
	m := compileProgram(b, "wordcount")
	params := benchParams(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Run(ctx, params, testLimits); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWordcountRunParallel is the throughput of warm runs on every
// core.
func BenchmarkWordcountRunParallel(b *testing.B) {
	m := compileProgram(b, "wordcount")
	params := benchParams(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Run(context.Background(), params, testLimits); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkWordcountNative is the same logic compiled into the binary, as
// a builtin would run it: decode params, count, encode the output.
func BenchmarkWordcountNative(b *testing.B) {
	params := benchParams(b)
	b.ReportAllocs()
	for b.Loop() {
		var in struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(params, &in); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(count.Words(in.Text)); err != nil {
			b.Fatal(err)
		}
	}
}
