// Command nebula-floor measures the machine's physical floor under Nebula's
// durable throughput, in a temporary directory under -dir:
//
//   - fsync: write 4 KiB and fsync it, in a loop, for -duration; every
//     Raft entry Nebula commits waits for at least one of these;
//   - raft: a single-node hashicorp/raft over raft-boltdb/v2 (the same
//     libraries and versions as the cluster package), in-memory transport,
//     snapshots discarded and a no-op state machine, with -goroutines
//     concurrent callers applying a 100-byte command for -duration. This is
//     what the replicated log can commit with nothing behind it.
//
// Dividing a workload's executions/s by the fsyncs/s printed here gives
// executions per fsync, a figure that carries across machines better than
// either number alone.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

func main() {
	dir := flag.String("dir", os.TempDir(), "directory to measure in (a temporary directory is made and removed inside it)")
	duration := flag.Duration("duration", 3*time.Second, "how long each measurement runs")
	goroutines := flag.Int("goroutines", 256, "raft: concurrent callers of Apply")
	flag.Parse()
	if *duration <= 0 || *goroutines < 1 {
		fmt.Fprintln(os.Stderr, "nebula-floor: -duration and -goroutines must be positive")
		os.Exit(2)
	}
	tmp, err := os.MkdirTemp(*dir, "nebula-floor-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "nebula-floor:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(tmp)
	fmt.Printf("directory     %s, %s per measurement\n", tmp, *duration)
	if err := fsyncFloor(tmp, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "nebula-floor: fsync:", err)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
	if err := raftFloor(tmp, *duration, *goroutines); err != nil {
		fmt.Fprintln(os.Stderr, "nebula-floor: raft:", err)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
}

// fsyncFloor writes 4 KiB at the end of a file and fsyncs it, one after the
// other, for d, and prints the rate and the latency percentiles.
func fsyncFloor(dir string, d time.Duration) error {
	f, err := os.Create(filepath.Join(dir, "fsync.dat"))
	if err != nil {
		return err
	}
	defer f.Close()
	block := make([]byte, 4096)
	for i := range block {
		block[i] = byte(i)
	}
	var lat []time.Duration
	start := time.Now()
	for time.Since(start) < d {
		t0 := time.Now()
		if _, err := f.Write(block); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("fsync         %.0f fsyncs/s (4 KiB write + fsync, %d in %s)\n", float64(len(lat))/elapsed.Seconds(), len(lat), elapsed.Round(time.Millisecond))
	fmt.Printf("fsync latency p50 %s  p99 %s  max %s\n", pct(lat, 0.50), pct(lat, 0.99), lat[len(lat)-1].Round(time.Microsecond))
	return nil
}

// noopFSM is a state machine that ignores everything: the measurement is
// of the log alone.
type noopFSM struct{}

func (noopFSM) Apply(*raft.Log) any                 { return nil }
func (noopFSM) Snapshot() (raft.FSMSnapshot, error) { return noopSnapshot{}, nil }
func (noopFSM) Restore(r io.ReadCloser) error       { return r.Close() }

type noopSnapshot struct{}

func (noopSnapshot) Persist(s raft.SnapshotSink) error { return s.Close() }
func (noopSnapshot) Release()                          {}

// raftFloor bootstraps a one-node raft over raft-boltdb, set up as the
// cluster package sets up a group of one (log cache, BatchApplyCh), and
// has n goroutines apply 100-byte commands for d.
func raftFloor(dir string, d time.Duration, n int) error {
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return err
	}
	defer bolt.Close()
	logs, err := raft.NewLogCache(1024, bolt)
	if err != nil {
		return err
	}
	snaps := raft.NewDiscardSnapshotStore()
	addr, trans := raft.NewInmemTransport("floor")

	rc := raft.DefaultConfig()
	rc.LocalID = "floor"
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: io.Discard})
	rc.BatchApplyCh = true
	conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: addr}}}
	if err := raft.BootstrapCluster(rc, logs, bolt, snaps, trans, conf); err != nil {
		return err
	}
	r, err := raft.NewRaft(rc, noopFSM{}, logs, bolt, snaps, trans)
	if err != nil {
		return err
	}
	defer r.Shutdown()
	select {
	case <-r.LeaderCh():
	case <-time.After(10 * time.Second):
		return errors.New("no leadership after 10s")
	}
	// Commit one entry first so the measurement starts from a leader
	// whose log is in use.
	if err := r.Barrier(10 * time.Second).Error(); err != nil {
		return err
	}

	cmd := make([]byte, 100)
	var applied atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := r.Apply(cmd, 10*time.Second).Error(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				applied.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	last := r.Stats()["last_log_index"]
	fmt.Printf("raft          %.0f applies/s (1 node, raft-boltdb, %d goroutines, 100-byte commands, %d in %s; last log index %s)\n",
		float64(applied.Load())/elapsed.Seconds(), n, applied.Load(), elapsed.Round(time.Millisecond), last)
	return nil
}

// pct returns the p-th percentile of sorted durations.
func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[int(float64(len(sorted)-1)*p)].Round(time.Microsecond)
}
