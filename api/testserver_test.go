package api

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/cluster"
	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/fsm"
	"github.com/nebula-engine/nebula/internal/metrics"
	"github.com/nebula-engine/nebula/storage/blobfs"
	"github.com/nebula-engine/nebula/storage/sqlite"
)

// testServer is the API over a real in-process engine: SQLite state, the
// FSM and a Raft group of one on an in-memory transport. No worker runs:
// executions start and their tasks wait to be claimed over the API.
type testServer struct {
	handler http.Handler
	svc     *engine.Service
	node    *cluster.Node
}

// testConfig is what newTestServer passes to the engine and the API;
// options change it before either is built.
type testConfig struct {
	service *engine.ServiceConfig
	api     *Config
}

// newTestServer builds a testServer in t.TempDir, ready to serve (the node
// leads and its state caught up). Community actions are on, with no module
// check. Everything stops when t ends.
func newTestServer(tb testing.TB, options ...func(*testConfig)) *testServer {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "state.db")})
	if err != nil {
		tb.Fatal(err)
	}
	blobs, err := blobfs.Open(blobfs.Config{Root: filepath.Join(dir, "blobs")})
	if err != nil {
		store.Close()
		tb.Fatal(err)
	}
	opts := engine.Options{KnownAction: engine.Builtins(engine.BuiltinsConfig{}).Has, Registered: engine.IsRegistryAction}
	hub := engine.NewHub()
	machine := engine.NewMachine(engine.MachineConfig{Options: opts, Blobs: blobs})
	f, err := fsm.New(ctx, fsm.Config{Store: store, Machine: machine, OnEvents: hub.Publish})
	if err != nil {
		store.Close()
		tb.Fatal(err)
	}
	// No BindAddr: a group of one on an in-memory transport.
	node, err := cluster.Open(ctx, cluster.Config{NodeID: "n1", Dir: filepath.Join(dir, "raft"), Bootstrap: true, FSM: f})
	if err != nil {
		store.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		node.Close()
		store.Close()
	})
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := node.WaitReady(wctx); err != nil {
		tb.Fatalf("node not ready: %v", err)
	}
	cfg := testConfig{
		service: &engine.ServiceConfig{
			Submitter:      node,
			Barrier:        node,
			Store:          store,
			Options:        opts,
			Hub:            hub,
			Blobs:          blobs,
			ActionsEnabled: true,
		},
		api: &Config{
			Ready: node.Ready,
			Cluster: func(context.Context) (ClusterView, error) {
				return ClusterView{Leader: node.Leader(), Members: []ClusterMember{{ID: "n1", Status: "alive", Voter: true, Leader: node.IsLeader()}}}, nil
			},
			Metrics: metrics.New(),
		},
	}
	for _, o := range options {
		o(&cfg)
	}
	svc := engine.NewService(*cfg.service)
	cfg.api.Service = svc
	h := New(*cfg.api)
	return &testServer{handler: h, svc: svc, node: node}
}
