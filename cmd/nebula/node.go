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
	"runtime/debug"
	"strconv"
	"strings"
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
	"github.com/nebula-engine/nebula/internal/metrics"
	"github.com/nebula-engine/nebula/internal/tlsutil"
	"github.com/nebula-engine/nebula/storage"
	"github.com/nebula-engine/nebula/storage/blobfs"
	"github.com/nebula-engine/nebula/storage/secrets"
	"github.com/nebula-engine/nebula/storage/sqlite"
)

// nodeFlags are the flags of the commands that run a coordinator. Each is
// also read from NEBULA_<NAME> when the flag is not given.
type nodeFlags struct {
	config, data, bind                 string
	nodeID, raftAddr, gossipAddr, join string
	bootstrapExpect                    int
}

func (f *nodeFlags) register(cmd *cobra.Command, cluster bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.config, "config", "", "config file laid over the profile's preset (env NEBULA_CONFIG)")
	fs.StringVar(&f.data, "data", "", "data directory (env NEBULA_DATA)")
	fs.StringVar(&f.bind, "bind", "", "API address host:port (env NEBULA_BIND)")
	if !cluster {
		return
	}
	fs.StringVar(&f.nodeID, "node-id", "", "this node's id (env NEBULA_NODE_ID)")
	fs.StringVar(&f.raftAddr, "raft-addr", "", "Raft address host:port (env NEBULA_RAFT_ADDR)")
	fs.StringVar(&f.gossipAddr, "gossip-addr", "", "gossip address host:port (env NEBULA_GOSSIP_ADDR)")
	fs.StringVar(&f.join, "join", "", "gossip addresses of other nodes, host:port[,…] (env NEBULA_JOIN)")
	fs.IntVar(&f.bootstrapExpect, "bootstrap-expect", 0, "coordinators to wait for before forming the cluster (env NEBULA_BOOTSTRAP_EXPECT)")
}

// apply lays the flags (or their env variables) over cfg.
func (f *nodeFlags) apply(cmd *cobra.Command, cfg *config.Config) error {
	if v := flagOrEnv(cmd, "data", f.data); v != "" {
		cfg.SetDataDir(v)
	}
	if v := flagOrEnv(cmd, "bind", f.bind); v != "" {
		cfg.API.Bind = v
	}
	if v := flagOrEnv(cmd, "node-id", f.nodeID); v != "" {
		cfg.Cluster.NodeID = v
	}
	if v := flagOrEnv(cmd, "raft-addr", f.raftAddr); v != "" {
		cfg.Cluster.RaftAddr = v
	}
	if v := flagOrEnv(cmd, "gossip-addr", f.gossipAddr); v != "" {
		cfg.Cluster.GossipAddr = v
	}
	if v := flagOrEnv(cmd, "join", f.join); v != "" {
		cfg.Cluster.Join = strings.Split(v, ",")
	}
	if v := flagOrEnv(cmd, "bootstrap-expect", strconv.Itoa(f.bootstrapExpect)); v != "" && v != "0" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return usagef("--bootstrap-expect: %q is not a number", v)
		}
		cfg.Cluster.BootstrapExpect = n
	}
	// Tokens come from the environment only: a flag would show them in
	// the process list.
	if v := os.Getenv("NEBULA_ADMIN_TOKEN"); v != "" {
		cfg.API.AdminToken = v
	}
	if v := os.Getenv("NEBULA_WORKER_TOKEN"); v != "" {
		cfg.API.WorkerToken = v
	}
	if v := os.Getenv("NEBULA_API_TLS_CERT"); v != "" {
		cfg.API.TLSCertFile = v
	}
	if v := os.Getenv("NEBULA_API_TLS_KEY"); v != "" {
		cfg.API.TLSKeyFile = v
	}
	cfg.Resolve()
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	return nil
}

func newDesktopCmd() *cobra.Command {
	cmd := nodeCmd("desktop", roleDesktop, nil)
	cmd.Short = "Run a single-node Nebula with everything embedded"
	cmd.Long = "Run a single-node Nebula: a Raft group of one over SQLite, a local worker\n" +
		"pool and the HTTP API (default http://127.0.0.1:8787), with auth off."
	return cmd
}

func newServerCmd() *cobra.Command {
	cmd := nodeCmd("server", roleServer, nil)
	cmd.Short = "Run a coordinator of a Nebula cluster (with a local worker unless worker.enabled = false)"
	cmd.Long = cmd.Short + ".\n\nAuth is on unless the config sets api.auth = false: give the admin token as\n" +
		"NEBULA_ADMIN_TOKEN (and NEBULA_WORKER_TOKEN for remote workers)."
	return cmd
}

func newControlPlaneCmd() *cobra.Command {
	cmd := nodeCmd("control-plane", roleServer, func(c *config.Config) { c.Worker.Enabled = false })
	cmd.Short = "Run a coordinator that executes no actions (workers pull them over the API)"
	cmd.Long = cmd.Short + ".\n\nAuth is on unless the config sets api.auth = false: give the admin token as\n" +
		"NEBULA_ADMIN_TOKEN, and workers NEBULA_WORKER_TOKEN (their --token)."
	return cmd
}

// nodeCmd builds a command that runs a coordinator: its config is the
// profile's preset (desktop, or selfhost for cluster roles) under the
// --config file, then flags and env; adjust, if set, has the last word.
func nodeCmd(use string, r role, adjust func(*config.Config)) *cobra.Command {
	var f nodeFlags
	profile := "selfhost"
	if r == roleDesktop {
		profile = "desktop"
	}
	cmd := &cobra.Command{
		Use:  use,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(flagOrEnv(cmd, "config", f.config), profile)
			if err != nil {
				return err
			}
			if err := f.apply(cmd, cfg); err != nil {
				return err
			}
			if adjust != nil {
				adjust(cfg)
			}
			return serve(cfg, r)
		},
	}
	f.register(cmd, r != roleDesktop)
	return cmd
}

// loadConfig loads the named file laid over its profile's preset, or the
// preset alone.
func loadConfig(file, profile string) (*config.Config, error) {
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
	return os.Getenv("NEBULA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
}

func newLogger() *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("NEBULA_LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// role says how a coordinator meets its peers.
type role int

const (
	// roleDesktop: a group of one with no network between nodes.
	roleDesktop role = iota
	// roleServer: Raft over TCP, peers found by gossip.
	roleServer
)

// serve runs a coordinator until SIGINT or SIGTERM.
func serve(cfg *config.Config, r role) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv("GOGC") == "" {
		// A node allocates briskly and keeps little alive: collecting at
		// three times the live heap rather than twice does half the GC
		// work for a few tens of MiB. GOGC in the environment wins.
		debug.SetGCPercent(200)
	}
	return runNode(ctx, cfg, r, newLogger())
}

// runNode runs a coordinator with its local worker until ctx ends, then
// shuts down in order: leave the cluster, stop taking requests, let
// running attempts report, stop the log, close the store.
func runNode(ctx context.Context, cfg *config.Config, r role, logger *slog.Logger) error {
	start := time.Now()
	nodeID := cfg.Cluster.NodeID
	logger = logger.With("node", nodeID)
	dataDir := cfg.Cluster.DataDir
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	// The master key seals credentials. A key that does not open this
	// data directory's sealed data is refused before anything is written.
	// Every node of a cluster seals and opens the same credentials, so a
	// server never makes a key of its own: it must be given one.
	envKey := os.Getenv("NEBULA_MASTER_KEY")
	if r != roleDesktop && envKey == "" {
		if _, err := os.Stat(filepath.Join(dataDir, "master.key")); errors.Is(err, os.ErrNotExist) {
			return usagef("master key: a cluster node needs the key every node shares: set NEBULA_MASTER_KEY (64 hex digits, e.g. from `openssl rand -hex 32`) or put it in %s", filepath.Join(dataDir, "master.key"))
		}
	}
	masterKeys, created, err := secrets.LoadKeys(dataDir, envKey)
	if err != nil {
		return usageError{fmt.Errorf("master key: %w", err)}
	}
	keyring, err := secrets.NewKeyring(masterKeys[0], masterKeys[1:]...)
	if err != nil {
		return usageError{err}
	}
	if err := keyring.Verify(ctx, dataDir); err != nil {
		return usageError{err}
	}
	if created {
		logger.Info("made a new master key", "file", filepath.Join(dataDir, "master.key"), "key_id", keyring.CurrentKeyID())
	}
	// Peers prove themselves to each other, and gossip is encrypted, with
	// keys derived from the master keys: holding the master key is what
	// makes a node a member.
	var peerSecrets, gossipKeys, caSeeds [][]byte
	for _, k := range masterKeys {
		peerSecrets = append(peerSecrets, secrets.DeriveKey(k, "peers"))
		gossipKeys = append(gossipKeys, secrets.DeriveKey(k, "gossip"))
		caSeeds = append(caSeeds, secrets.DeriveKey(k, "cluster-ca"))
	}

	// Bind first: a port in use is reported before any state is opened.
	ln, err := net.Listen("tcp", cfg.API.Bind)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	defer ln.Close()
	scheme := "http"
	var apiCert *tlsutil.Keypair
	if cfg.API.TLSCertFile != "" {
		if apiCert, err = tlsutil.NewKeypair(cfg.API.TLSCertFile, cfg.API.TLSKeyFile, logger); err != nil {
			return usageError{err}
		}
		scheme = "https"
	}

	var (
		peers    *cluster.Transport
		peerTLS  *tlsutil.Peer
		self     cluster.MemberMeta
		apiAddr  string
		raftAddr string
	)
	if r != roleDesktop {
		if apiAddr, err = advertise(cfg.Cluster.AdvertiseAPIAddr, ln.Addr().String()); err != nil {
			return usagef("cluster.advertise_api_addr: %v", err)
		}
		if raftAddr, err = advertise(cfg.Cluster.AdvertiseRaftAddr, cfg.Cluster.RaftAddr); err != nil {
			return usagef("cluster.advertise_raft_addr: %v", err)
		}
		peers, peerTLS, err = listenPeers(cfg, peerOptions{raftAddr: raftAddr, caSeeds: caSeeds, secrets: peerSecrets, logger: logger})
		if err != nil {
			return err
		}
		defer peers.Close()
	}

	store, err := sqlite.Open(ctx, sqlite.Config{Path: cfg.Storage.Path, Logger: logger})
	if err != nil {
		return err
	}
	defer store.Close()

	local, err := blobfs.Open(blobfs.Config{Root: cfg.Blobs.Root})
	if err != nil {
		return err
	}
	var members *cluster.Membership
	var blobs storage.BlobStore = local
	if r != roleDesktop {
		blobs = cluster.NewReplicatedBlobs(cluster.BlobsConfig{
			Local:     local,
			Transport: peers,
			Peers: func() []string {
				var addrs []string
				if members == nil {
					return nil
				}
				for _, m := range members.Members() {
					if m.Meta.ID != nodeID && m.Meta.Role == cluster.RoleCoordinator && m.Status == cluster.StatusAlive {
						addrs = append(addrs, m.Meta.RaftAddr)
					}
				}
				return addrs
			},
		})
	}

	actions := engine.Builtins(engine.BuiltinsConfig{
		Logger: logger,
		HTTP: engine.HTTPConfig{
			AllowPrivate: cfg.Sandbox.AllowPrivateNetwork,
			// Large bodies go to the blob store, not the log.
			MaxResponseBytes: 32 << 20,
			Credentials:      engine.Credentials{Store: store, Secrets: keyring},
		},
	})
	opts := engine.Options{KnownAction: actions.Has, Registered: engine.IsRegistryAction}
	// The service is made below; the registry source reads through it.
	source := &registrySource{blobs: blobs}
	run, err := newRunners(ctx, runnersConfig{
		cfg: cfg, actions: actions, source: source,
		cacheDir: filepath.Join(dataDir, "wasm-cache"), logger: logger,
	})
	if err != nil {
		return err
	}
	defer run.Close(context.Background())
	hub := engine.NewHub()
	nodeMetrics := metrics.New()
	machine := engine.NewMachine(engine.MachineConfig{Options: opts, Blobs: blobs, Logger: logger})
	f, err := fsm.New(ctx, fsm.Config{Store: store, Machine: machine, Logger: logger, OnEvents: countEvents(nodeMetrics, hub.Publish),
		OnEntry: func(es fsm.EntryStats) { nodeMetrics.ObserveEntry(es.Duration, es.Cost, es.Nodes, es.Deferred) }})
	if err != nil {
		return err
	}

	ccfg := cluster.Config{
		NodeID:            nodeID,
		Dir:               filepath.Join(dataDir, "raft"),
		FSM:               f,
		Logger:            logger,
		SnapshotThreshold: cfg.Cluster.SnapshotThreshold,
		SnapshotInterval:  time.Duration(cfg.Cluster.SnapshotInterval),
		TrailingLogs:      cfg.Cluster.TrailingLogs,
		OnApply:           nodeMetrics.ObserveApply,
		OnLeaderChange:    nodeMetrics.LeaderChanged,
	}
	if r == roleDesktop {
		ccfg.Bootstrap = true
	} else {
		self = cluster.MemberMeta{ID: nodeID, Role: cluster.RoleCoordinator, APIAddr: apiAddr, RaftAddr: raftAddr, Version: version,
			Transport: peers.Mode(), CA: peers.Issuer()}
		ccfg.Transport = peers
		ccfg.Blobs = local
		ccfg.HeartbeatTimeout = time.Duration(cfg.Cluster.HeartbeatTimeout)
	}
	node, err := cluster.Open(ctx, ccfg)
	if err != nil {
		return err
	}
	defer node.Close()
	watchNode(nodeMetrics, node, store)
	if r != roleDesktop {
		// Gossip starts after Raft is open, so that the first message
		// already says whether this node belongs to a group: a new node
		// must never bootstrap a second group beside an existing one.
		servers, err := node.Servers()
		if err != nil {
			return err
		}
		self.HasState = len(servers) > 0
		members, err = cluster.StartMembership(ctx, cluster.MembershipConfig{
			Meta:     self,
			BindAddr: cfg.Cluster.GossipAddr,
			Join:     cfg.Cluster.Join,
			Keys:     gossipKeys,
			Admit:    peers.Admit,
			Logger:   logger,
		})
		if err != nil {
			return fmt.Errorf("gossip: %w", err)
		}
		defer members.Shutdown()
	}

	svc := engine.NewService(engine.ServiceConfig{
		Submitter:               node,
		Barrier:                 node,
		Store:                   store,
		Options:                 opts,
		Logger:                  logger,
		Hub:                     hub,
		MaxConcurrentExecutions: cfg.Engine.MaxConcurrentExecutions,
		DefinitionLimits:        engine.DefinitionLimits{MaxNodes: cfg.Engine.MaxWorkflowNodes, MaxBytes: cfg.Engine.MaxDefinitionBytes},
		Blobs:                   blobs,
		Secrets:                 keyring,
		ActionsEnabled:          run.wasm != nil,
		CheckModule:             run.checkModule,
	})
	source.svc = svc
	mux := http.NewServeMux()
	mux.Handle("/", api.New(api.Config{
		Service: svc,
		Ready:   node.Ready,
		Logger:  logger,
		Cluster: clusterView(node, members, nodeID, ln.Addr().String()),
		Metrics: nodeMetrics,
		// Auth, and who may call what: see api/auth.go.
		Auth:        cfg.API.Auth,
		AdminToken:  cfg.API.AdminToken,
		WorkerToken: cfg.API.WorkerToken,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	if apiCert != nil {
		// ServeTLS adds HTTP/2 to what the listener offers.
		srv.TLSConfig = apiCert.ServerConfig()
		go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { serveErr <- srv.Serve(ln) }()
	}
	if addr := os.Getenv("NEBULA_PPROF_ADDR"); addr != "" {
		// Profiling stays off the API listener: it is for operators only.
		go func() {
			logger.Info("pprof listening", "addr", addr)
			if err := http.ListenAndServe(addr, pprofMux()); err != nil {
				logger.Warn("pprof", "err", err)
			}
		}()
	}

	// Background work runs under its own context so that shutdown can
	// stop it after the API stopped taking requests. Running attempts have
	// one more: they may finish (drain) after claiming stopped.
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	attemptsCtx, stopAttempts := context.WithCancel(context.Background())
	defer stopAttempts()
	var work sync.WaitGroup
	goWork := func(fn func(context.Context)) {
		work.Add(1)
		go func() {
			defer work.Done()
			fn(workCtx)
		}()
	}
	var rc cluster.ReconcileConfig
	if members != nil {
		rc = cluster.ReconcileConfig{
			Raft:            node.Raft(),
			Members:         members,
			Self:            self,
			BootstrapExpect: cfg.Cluster.BootstrapExpect,
			DeadGrace:       time.Duration(cfg.Cluster.DeadServerGrace),
			PromoteAfter:    time.Duration(cfg.Cluster.PromoteAfter),
			CaughtUp:        node.CaughtUp,
			Logger:          logger,
		}
		goWork(func(ctx context.Context) {
			if err := cluster.Bootstrap(ctx, rc); err != nil && ctx.Err() == nil {
				logger.Error("bootstrap failed", "err", err)
				return
			}
			cluster.Reconcile(ctx, rc)
		})
	}
	holder := nodeID + "/" + ids.New()
	goWork(func(ctx context.Context) {
		svc.RunMaintenance(ctx, node.IsLeader, nodeID+"/", holder, time.Second)
	})
	goWork(func(ctx context.Context) { svc.RunTimers(ctx, node.IsLeader) })
	goWork(func(ctx context.Context) { svc.RunCron(ctx, node.IsLeader) })
	goWork(func(ctx context.Context) { svc.RunContinuations(ctx, node.IsLeader) })
	goWork(func(ctx context.Context) {
		watchCerts(ctx, logger, peerTLS, apiCert, func() {
			if members != nil {
				members.SetCA(peers.Issuer())
			}
			peers.Recheck()
		})
	})
	if cfg.Worker.Enabled {
		wake, stopWake := hub.TasksReady()
		defer stopWake()
		w := engine.NewWorker(engine.WorkerConfig{
			Submitter:   node,
			Holder:      holder,
			Concurrency: cfg.Worker.Concurrency,
			LeaseTTL:    time.Duration(cfg.Worker.LeaseTTL),
			// engine.default_timeout bounds attempts of nodes that set
			// no timeout of their own.
			DefaultTimeout: time.Duration(cfg.Engine.DefaultTimeout),
			Runner:         run,
			Wake:           wake,
			Hub:            hub,
			Blobs:          blobs,
			Logger:         logger,
			OnAttempt:      nodeMetrics.AttemptFinished,
		})
		goWork(func(ctx context.Context) { w.RunDrain(ctx, attemptsCtx) })
	}

	go func() {
		if err := node.WaitReady(ctx); err == nil {
			if node.IsLeader() {
				// Before "ready": the configured bounds are in force.
				svc.SyncLimits(ctx)
			}
			logger.Info("ready", "api", scheme+"://"+ln.Addr().String(), "data", dataDir, "peers", peerMode(peers, cfg), "startup", time.Since(start).Round(time.Millisecond))
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
	// Stop claiming and let running attempts finish, for a while.
	stopWork()
	drained := make(chan struct{})
	go func() { work.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		logger.Warn("attempts still running after 10s; handing them back")
		stopAttempts()
		<-drained
	}
	// Attempts cut short are handed back now rather than when their
	// lease would expire.
	handCtx, cancelHand := context.WithTimeout(context.Background(), 5*time.Second)
	if _, err := node.Submit(handCtx, &engine.ReclaimTasks{Max: 1000, HolderPrefix: holder}); err != nil {
		logger.Debug("hand back", "err", err)
	}
	cancelHand()
	if members != nil {
		// Leave: the leader removes this node from the configuration at
		// once (leadership moves first when this node leads).
		leaveCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := cluster.GracefulLeave(leaveCtx, rc); err != nil {
			logger.Warn("leave", "err", err)
		}
		cancel()
	}
	if err := node.Close(); err != nil {
		logger.Warn("raft shutdown", "err", err)
	}
	logger.Info("stopped")
	return nil
}

// advertise returns the address peers should use: the configured one, or
// the bound one when its host is specific, or this machine's private IP
// with the bound port.
func advertise(configured, bound string) (string, error) {
	if configured != "" {
		if _, _, err := net.SplitHostPort(configured); err != nil {
			return "", err
		}
		return configured, nil
	}
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return bound, nil
	}
	ip, err := privateIP()
	if err != nil {
		return "", fmt.Errorf("bound to %s and no address to advertise: %w", bound, err)
	}
	return net.JoinHostPort(ip, port), nil
}

// privateIP returns the first private IPv4 address of this machine.
func privateIP() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsPrivate() {
			return n.IP.String(), nil
		}
	}
	return "", errors.New("no private IPv4 address; set it explicitly")
}

// clusterView builds GET /v1/cluster from Raft's configuration and gossip.
func clusterView(node *cluster.Node, members *cluster.Membership, self, selfAPI string) func(context.Context) (api.ClusterView, error) {
	return func(ctx context.Context) (api.ClusterView, error) {
		servers, err := node.Servers()
		if err != nil {
			return api.ClusterView{}, err
		}
		leader := node.Leader()
		v := api.ClusterView{Leader: leader, Members: []api.ClusterMember{}}
		gossip := map[string]cluster.Member{}
		if members != nil {
			for _, m := range members.Members() {
				gossip[m.Meta.ID] = m
			}
		}
		seen := map[string]bool{}
		for _, s := range servers {
			m := api.ClusterMember{ID: s.ID, RaftAddr: s.Address, Voter: s.Voter, Leader: s.ID == leader, Status: "alive"}
			if g, ok := gossip[s.ID]; ok {
				m.APIAddr, m.Status = g.Meta.APIAddr, string(g.Status)
			} else if s.ID == self {
				m.APIAddr = selfAPI
			}
			seen[s.ID] = true
			v.Members = append(v.Members, m)
		}
		// Coordinators gossip knows of that are not (yet) in Raft.
		for id, g := range gossip {
			if !seen[id] && g.Meta.Role == cluster.RoleCoordinator {
				v.Members = append(v.Members, api.ClusterMember{ID: id, APIAddr: g.Meta.APIAddr, RaftAddr: g.Meta.RaftAddr, Status: string(g.Status)})
			}
		}
		return v, nil
	}
}

func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}
