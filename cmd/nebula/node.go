package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nebula-engine/nebula/api"
	"github.com/nebula-engine/nebula/cluster"
	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/fsm"
	"github.com/nebula-engine/nebula/internal/config"
	"github.com/nebula-engine/nebula/internal/ids"
	"github.com/nebula-engine/nebula/storage/sqlite"
)

func newDesktopCmd() *cobra.Command {
	var dataDir, bind, configFile string
	cmd := &cobra.Command{
		Use:   "desktop",
		Short: "Run a single-node Nebula with everything embedded",
		Long: "Run a single-node Nebula: a Raft group of one over SQLite, a local worker\n" +
			"pool and the HTTP API (default http://127.0.0.1:8787), with auth off.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configFile, "desktop")
			if err != nil {
				return err
			}
			if v := flagOrEnv(cmd, "data", dataDir); v != "" {
				cfg.Cluster.DataDir = v
				cfg.Storage.Path = filepath.Join(v, "nebula.sqlite")
				cfg.Blobs.Root = filepath.Join(v, "blobs")
			}
			if v := flagOrEnv(cmd, "bind", bind); v != "" {
				cfg.API.Bind = v
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runNode(ctx, cfg, newLogger())
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", "", "data directory (default ./nebula-data; env NEBULA_DATA)")
	f.StringVar(&bind, "bind", "", "API address (default 127.0.0.1:8787; env NEBULA_BIND)")
	f.StringVar(&configFile, "config", "", "config file laid over the desktop preset (env NEBULA_CONFIG)")
	return cmd
}

// loadConfig loads the file named by the flag or NEBULA_CONFIG, or the
// profile's preset alone.
func loadConfig(file, profile string) (*config.Config, error) {
	if file == "" {
		file = os.Getenv("NEBULA_CONFIG")
	}
	var (
		cfg *config.Config
		err error
	)
	if file == "" {
		cfg, err = config.Load(nil, profile)
	} else {
		cfg, err = config.LoadFile(file, profile)
	}
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// flagOrEnv returns the flag's value when it was set, else NEBULA_<NAME>.
func flagOrEnv(cmd *cobra.Command, name, value string) string {
	if cmd.Flags().Changed(name) {
		return value
	}
	return os.Getenv("NEBULA_" + envName(name))
}

func envName(flag string) string {
	b := []byte(flag)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func newLogger() *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("NEBULA_LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}

// runNode runs a coordinator with its local worker until ctx ends, then
// shuts down in order: stop taking requests, let running attempts report,
// stop the log, close the store.
func runNode(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	start := time.Now()
	nodeID := cfg.Cluster.NodeID
	logger = logger.With("node", nodeID)
	dataDir := filepath.Dir(cfg.Storage.Path)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	// Bind first: a port in use is reported before any state is opened.
	ln, err := net.Listen("tcp", cfg.API.Bind)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	defer ln.Close()

	store, err := sqlite.Open(ctx, sqlite.Config{Path: cfg.Storage.Path, Logger: logger})
	if err != nil {
		return err
	}
	defer store.Close()

	actions := engine.Builtins(logger)
	opts := engine.Options{KnownAction: actions.Has}
	hub := engine.NewHub()
	machine := engine.NewMachine(engine.MachineConfig{Options: opts, Logger: logger})
	f, err := fsm.New(ctx, fsm.Config{Store: store, Machine: machine, Logger: logger, OnEvents: hub.Publish, TempDir: dataDir})
	if err != nil {
		return err
	}
	node, err := cluster.Open(ctx, cluster.Config{
		NodeID:    nodeID,
		Dir:       filepath.Join(dataDir, "raft"),
		Bootstrap: true,
		FSM:       f,
		Logger:    logger,
	})
	if err != nil {
		return err
	}
	defer node.Close()

	svc := engine.NewService(engine.ServiceConfig{Submitter: node, Store: store, Options: opts, Logger: logger, Hub: hub})
	srv := &http.Server{
		Handler:           api.New(api.Config{Service: svc, Ready: node.Ready, Logger: logger}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if addr := os.Getenv("NEBULA_PPROF_ADDR"); addr != "" {
		// Profiling stays off the API listener: it is for operators only.
		go func() {
			logger.Info("pprof listening", "addr", addr)
			if err := http.ListenAndServe(addr, pprofMux()); err != nil {
				logger.Warn("pprof", "err", err)
			}
		}()
	}

	// Work runs under its own context so that shutdown can stop it after
	// the API stopped taking requests.
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var work sync.WaitGroup
	holder := nodeID + "/" + ids.New()
	work.Add(1)
	go func() {
		defer work.Done()
		svc.RunMaintenance(workCtx, nodeID+"/", holder, 5*time.Second)
	}()
	if cfg.Worker.Enabled {
		w := engine.NewWorker(engine.WorkerConfig{
			Submitter:   node,
			Holder:      holder,
			Concurrency: cfg.Worker.Concurrency,
			Actions:     actions,
			Wake:        hub.TasksReady(),
			Logger:      logger,
		})
		work.Add(1)
		go func() {
			defer work.Done()
			w.Run(workCtx)
		}()
	}

	go func() {
		if err := node.WaitReady(ctx); err == nil {
			logger.Info("ready", "api", "http://"+ln.Addr().String(), "data", dataDir, "startup", time.Since(start).Round(time.Millisecond))
		}
	}()

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-serveErr:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("api: %w", err)
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		logger.Warn("api shutdown", "err", err)
	}
	stopWork()
	work.Wait()
	if err := node.Close(); err != nil {
		logger.Warn("raft shutdown", "err", err)
	}
	logger.Info("stopped")
	return nil
}
