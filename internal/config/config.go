// Package config loads Nebula's TOML configuration: a file laid over the
// built-in preset of its profile, then flags and NEBULA_* environment
// variables laid over that.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/nebula-engine/nebula/deploy"
	"github.com/nebula-engine/nebula/sandbox"
)

// ErrInvalid marks a configuration that cannot be used; the message names
// the key.
var ErrInvalid = errors.New("invalid configuration")

// Duration is a TOML string such as "30s".
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration: %q", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// Config is the whole configuration (CONTRACT §2).
type Config struct {
	Mode struct {
		Profile string `toml:"profile"`
	} `toml:"mode"`
	Engine struct {
		MaxConcurrentExecutions int      `toml:"max_concurrent_executions"`
		DefaultTimeout          Duration `toml:"default_timeout"`
		// MaxWorkflowNodes and MaxDefinitionBytes bound a saved
		// workflow; a bigger one is refused (400 invalid_workflow).
		MaxWorkflowNodes   int `toml:"max_workflow_nodes"`
		MaxDefinitionBytes int `toml:"max_definition_bytes"`
	} `toml:"engine"`
	Storage struct {
		Backend        string `toml:"backend"`
		Path           string `toml:"path"`
		URL            string `toml:"url"`
		MaxConnections int    `toml:"max_connections"`
	} `toml:"storage"`
	Blobs struct {
		Backend string `toml:"backend"`
		Root    string `toml:"root"`
		Bucket  string `toml:"bucket"`
		Region  string `toml:"region"`
	} `toml:"blobs"`
	Queue struct {
		Backend  string `toml:"backend"`
		RedisURL string `toml:"redis_url"`
	} `toml:"queue"`
	Sandbox struct {
		DefaultIsolation string `toml:"default_isolation"`
		// AllowPrivateNetwork lets builtin.http reach loopback, private
		// and link-local addresses (cloud metadata among them).
		AllowPrivateNetwork bool     `toml:"allow_private_network"`
		MaxMemoryMB         int      `toml:"max_memory_mb"`
		MaxCPUTime          Duration `toml:"max_cpu_time"`
		TrustedActions      struct {
			Patterns  []string `toml:"patterns"`
			Isolation string   `toml:"isolation"`
			// Capabilities are what trusted actions may be granted
			// ("*": all they declare).
			Capabilities []string `toml:"capabilities"`
		} `toml:"trusted_actions"`
		CommunityActions struct {
			Enabled   bool     `toml:"enabled"`
			Patterns  []string `toml:"patterns"`
			Isolation string   `toml:"isolation"`
			// Capabilities are what a community module may be granted;
			// one declaring more is refused at registration.
			Capabilities      []string `toml:"capabilities"`
			WasmMemoryLimitMB int      `toml:"wasm_memory_limit_mb"`
			WasmFuelLimit     int64    `toml:"wasm_fuel_limit"`
		} `toml:"community_actions"`
	} `toml:"sandbox"`
	Tenant struct {
		Enabled  bool   `toml:"enabled"`
		Strategy string `toml:"strategy"`
	} `toml:"tenant"`
	API struct {
		Bind string `toml:"bind"`
		// Auth requires a token on every request but health, metrics and
		// webhooks: on by default for every profile but desktop, and
		// always with tenant.enabled.
		Auth bool `toml:"auth"`
		// AdminToken manages tenants and acts for any of them; required
		// when auth is on. Env NEBULA_ADMIN_TOKEN.
		AdminToken string `toml:"admin_token"`
		// WorkerToken lets remote workers use the worker protocol and
		// nothing else. Env NEBULA_WORKER_TOKEN.
		WorkerToken string `toml:"worker_token"`
		// TLSCertFile and TLSKeyFile serve the API over https (env
		// NEBULA_API_TLS_CERT, NEBULA_API_TLS_KEY); both or neither.
		TLSCertFile string `toml:"tls_cert_file"`
		TLSKeyFile  string `toml:"tls_key_file"`
	} `toml:"api"`
	Cluster struct {
		NodeID            string   `toml:"node_id"`
		DataDir           string   `toml:"data_dir"`
		RaftAddr          string   `toml:"raft_addr"`
		GossipAddr        string   `toml:"gossip_addr"`
		AdvertiseRaftAddr string   `toml:"advertise_raft_addr"`
		AdvertiseAPIAddr  string   `toml:"advertise_api_addr"`
		Join              []string `toml:"join"`
		BootstrapExpect   int      `toml:"bootstrap_expect"`
		// DeadServerGrace is how long a coordinator may be dead before
		// the leader removes it from the Raft configuration.
		DeadServerGrace Duration `toml:"dead_server_grace"`
		// PromoteAfter is how long a new coordinator serves as a
		// non-voter, with healthy heartbeats, before it gets a vote.
		PromoteAfter Duration `toml:"promote_after"`
		// HeartbeatTimeout sets Raft's heartbeat and election timeouts.
		HeartbeatTimeout Duration `toml:"heartbeat_timeout"`
		// SnapshotThreshold: entries after which a snapshot is taken and
		// the log trimmed; SnapshotInterval: how often that is checked;
		// TrailingLogs: entries kept after a snapshot for followers that
		// lag a little.
		SnapshotThreshold uint64   `toml:"snapshot_threshold"`
		SnapshotInterval  Duration `toml:"snapshot_interval"`
		TrailingLogs      uint64   `toml:"trailing_logs"`
		// InsecureTransport lets peers talk in plain text: the only way
		// to turn off their mutual TLS.
		InsecureTransport bool `toml:"insecure_transport"`
		// TLS brings a CA of one's own for the peers' mutual TLS; when
		// CAFile is empty, the CA is derived from the master key.
		TLS struct {
			CAFile               string `toml:"ca_file"`
			CertFile             string `toml:"cert_file"`
			KeyFile              string `toml:"key_file"`
			VerifyServerHostname bool   `toml:"verify_server_hostname"`
		} `toml:"tls"`
	} `toml:"cluster"`
	Worker struct {
		Enabled     bool `toml:"enabled"`
		Concurrency int  `toml:"concurrency"`
		// LeaseTTL is how long a claimed attempt may run without a
		// result or heartbeat before it is reclaimed.
		LeaseTTL Duration `toml:"lease_ttl"`
	} `toml:"worker"`
}

// Load returns the configuration for file's content (nil for none) laid
// over the preset of its profile; defaultProfile applies when the file
// names none.
func Load(file []byte, defaultProfile string) (*Config, error) {
	profile := defaultProfile
	if len(file) > 0 {
		var head struct {
			Mode struct {
				Profile string `toml:"profile"`
			} `toml:"mode"`
		}
		if _, err := toml.Decode(string(file), &head); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if head.Mode.Profile != "" {
			profile = head.Mode.Profile
		}
	}
	preset, err := deploy.Preset(profile)
	if err != nil {
		return nil, fmt.Errorf("%w: mode.profile: %v", ErrInvalid, err)
	}
	c := defaults()
	// Auth is off only on a desktop: a node others can reach serves no
	// request without a token unless its config says so.
	c.API.Auth = profile != "desktop"
	if _, err := decodeStrict(preset, c); err != nil {
		return nil, fmt.Errorf("preset %s: %w", profile, err)
	}
	if len(file) > 0 {
		md, err := decodeStrict(file, c)
		if err != nil {
			return nil, err
		}
		if c.Tenant.Enabled && md.IsDefined("api", "auth") && !c.API.Auth {
			return nil, fmt.Errorf("%w: api.auth: tenant.enabled = true needs auth; set api.auth = true or tenant.enabled = false", ErrInvalid)
		}
	}
	// Tenants are told apart by their tokens.
	if c.Tenant.Enabled {
		c.API.Auth = true
	}
	return c, nil
}

// defaults are the values no preset sets; api.auth depends on the
// profile, see Load.
func defaults() *Config {
	c := &Config{}
	c.Engine.MaxWorkflowNodes = 1000
	c.Engine.MaxDefinitionBytes = 1 << 20
	c.Cluster.NodeID = "n1"
	c.Cluster.RaftAddr = "0.0.0.0:8788"
	c.Cluster.GossipAddr = "0.0.0.0:8789"
	c.Cluster.BootstrapExpect = 1
	c.Cluster.DeadServerGrace = Duration(60 * time.Second)
	c.Cluster.PromoteAfter = Duration(10 * time.Second)
	c.Cluster.HeartbeatTimeout = Duration(time.Second)
	c.Cluster.SnapshotThreshold = 8192
	c.Cluster.SnapshotInterval = Duration(30 * time.Second)
	c.Cluster.TrailingLogs = 10240
	c.Worker.Enabled = true
	c.Worker.Concurrency = 16
	c.Worker.LeaseTTL = Duration(30 * time.Second)
	c.Sandbox.DefaultIsolation = "capability_gated"
	c.Sandbox.MaxCPUTime = Duration(30 * time.Second)
	c.Sandbox.TrustedActions.Patterns = []string{"builtin.*", "internal.*"}
	c.Sandbox.TrustedActions.Isolation = "none"
	c.Sandbox.TrustedActions.Capabilities = []string{"*"}
	c.Sandbox.CommunityActions.Patterns = []string{"community.*", "hub.*"}
	c.Sandbox.CommunityActions.Isolation = "isolated"
	c.Sandbox.CommunityActions.Capabilities = []string{"net:*", "clock", "random"}
	c.Sandbox.CommunityActions.WasmMemoryLimitMB = 128
	// A Go module needs a few million instructions to start its runtime.
	c.Sandbox.CommunityActions.WasmFuelLimit = 1_000_000_000
	return c
}

// decodeStrict decodes TOML into c, refusing keys c does not have.
func decodeStrict(data []byte, c *Config) (toml.MetaData, error) {
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return md, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return md, fmt.Errorf("%w: unknown key %q", ErrInvalid, und[0].String())
	}
	return md, nil
}

// LoadFile reads and loads a config file.
func LoadFile(name, defaultProfile string) (*Config, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c, err := Load(b, defaultProfile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// Resolve fills the paths derived from the data directory: the data
// directory itself (the storage file's folder when unset), the SQLite
// file and the blob root inside it.
func (c *Config) Resolve() {
	if c.Cluster.DataDir == "" {
		c.Cluster.DataDir = "./nebula-data"
		if c.Storage.Path != "" {
			c.Cluster.DataDir = filepath.Dir(c.Storage.Path)
		}
	}
	if c.Storage.Path == "" {
		c.Storage.Path = filepath.Join(c.Cluster.DataDir, "nebula.sqlite")
	}
	if c.Blobs.Root == "" {
		c.Blobs.Root = filepath.Join(c.Cluster.DataDir, "blobs")
	}
}

// SetDataDir moves every path under dir.
func (c *Config) SetDataDir(dir string) {
	c.Cluster.DataDir = dir
	c.Storage.Path = ""
	c.Blobs.Root = ""
	c.Resolve()
}

// Validate checks values that decoding cannot.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
	}
	switch c.Storage.Backend {
	case "raft", "sqlite":
	case "postgres":
		return bad("storage.backend", "%q is not available in this build yet; use \"raft\"", c.Storage.Backend)
	default:
		return bad("storage.backend", "unknown backend %q (want \"raft\")", c.Storage.Backend)
	}
	switch c.Queue.Backend {
	case "", "raft", "memory":
	case "redis":
		return bad("queue.backend", "%q is not available in this build yet; use \"raft\"", c.Queue.Backend)
	default:
		return bad("queue.backend", "unknown backend %q (want \"raft\")", c.Queue.Backend)
	}
	switch c.Blobs.Backend {
	case "", "filesystem":
	case "s3":
		return bad("blobs.backend", "%q is not available in this build yet; use \"filesystem\"", c.Blobs.Backend)
	default:
		return bad("blobs.backend", "unknown backend %q (want \"filesystem\")", c.Blobs.Backend)
	}
	if c.Engine.MaxConcurrentExecutions < 0 {
		return bad("engine.max_concurrent_executions", "must not be negative")
	}
	if c.Engine.MaxWorkflowNodes < 1 || c.Engine.MaxWorkflowNodes > 100_000 {
		return bad("engine.max_workflow_nodes", "must be from 1 to 100000, got %d", c.Engine.MaxWorkflowNodes)
	}
	if c.Engine.MaxDefinitionBytes < 1024 || c.Engine.MaxDefinitionBytes > 64<<20 {
		return bad("engine.max_definition_bytes", "must be from 1024 to %d, got %d", 64<<20, c.Engine.MaxDefinitionBytes)
	}
	if c.Worker.Concurrency < 1 || c.Worker.Concurrency > 4096 {
		return bad("worker.concurrency", "must be from 1 to 4096, got %d", c.Worker.Concurrency)
	}
	if _, _, err := net.SplitHostPort(c.API.Bind); err != nil {
		return bad("api.bind", "%q is not host:port", c.API.Bind)
	}
	if c.API.Auth && c.API.AdminToken == "" {
		return bad("api.admin_token", "required when auth is on (api.auth, the default of the %q profile): set it or env NEBULA_ADMIN_TOKEN, e.g. from `openssl rand -hex 24`", c.Mode.Profile)
	}
	for _, tk := range []struct{ key, value string }{
		{"api.admin_token", c.API.AdminToken},
		{"api.worker_token", c.API.WorkerToken},
	} {
		if tk.value != "" && len(tk.value) < minTokenLen {
			return bad(tk.key, "must be at least %d characters, got %d", minTokenLen, len(tk.value))
		}
	}
	if c.API.WorkerToken != "" && c.API.WorkerToken == c.API.AdminToken {
		return bad("api.worker_token", "must differ from api.admin_token")
	}
	if (c.API.TLSCertFile == "") != (c.API.TLSKeyFile == "") {
		return bad("api.tls_cert_file", "api.tls_cert_file and api.tls_key_file go together (env NEBULA_API_TLS_CERT, NEBULA_API_TLS_KEY): set both or neither")
	}
	ct := c.Cluster.TLS
	switch {
	case ct.CAFile == "" && (ct.CertFile != "" || ct.KeyFile != ""):
		return bad("cluster.tls.ca_file", "required with cluster.tls.cert_file and key_file: the CA that signed every node's certificate")
	case ct.CAFile != "" && (ct.CertFile == "" || ct.KeyFile == ""):
		return bad("cluster.tls.cert_file", "cluster.tls.ca_file needs this node's cert_file and key_file too (made with `nebula tls cert create`)")
	case c.Cluster.InsecureTransport && (ct.CAFile != "" || ct.VerifyServerHostname):
		return bad("cluster.insecure_transport", "true turns peer TLS off, yet [cluster.tls] is set: choose one")
	}
	if c.Cluster.BootstrapExpect < 1 || c.Cluster.BootstrapExpect > 9 {
		return bad("cluster.bootstrap_expect", "must be from 1 to 9, got %d", c.Cluster.BootstrapExpect)
	}
	for _, a := range []struct{ key, addr string }{
		{"cluster.raft_addr", c.Cluster.RaftAddr},
		{"cluster.gossip_addr", c.Cluster.GossipAddr},
	} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return bad(a.key, "%q is not host:port", a.addr)
		}
	}
	for _, j := range c.Cluster.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return bad("cluster.join", "%q is not host:port", j)
		}
	}
	if c.Cluster.HeartbeatTimeout < Duration(10*time.Millisecond) {
		return bad("cluster.heartbeat_timeout", "must be at least 10ms")
	}
	if c.Cluster.SnapshotThreshold < 16 {
		return bad("cluster.snapshot_threshold", "must be at least 16, got %d", c.Cluster.SnapshotThreshold)
	}
	if c.Worker.LeaseTTL < Duration(time.Second) {
		return bad("worker.lease_ttl", "must be at least 1s")
	}
	if !ValidNodeID(c.Cluster.NodeID) {
		return bad("cluster.node_id", "%q must be 1-64 characters of a-z, A-Z, 0-9, '-', '_', '.'", c.Cluster.NodeID)
	}
	// Community actions are always isolated: no configuration weakens
	// that.
	ca := c.Sandbox.CommunityActions
	if ca.Isolation != "" && ca.Isolation != "isolated" {
		return bad("sandbox.community_actions.isolation", "must be \"isolated\", got %q: community actions always run in the WebAssembly sandbox", ca.Isolation)
	}
	for _, iso := range []struct{ key, value string }{
		{"sandbox.default_isolation", c.Sandbox.DefaultIsolation},
		{"sandbox.trusted_actions.isolation", c.Sandbox.TrustedActions.Isolation},
	} {
		switch iso.value {
		case "none", "capability_gated", "isolated":
		default:
			return bad(iso.key, "%q is not \"none\", \"capability_gated\" or \"isolated\"", iso.value)
		}
	}
	for _, cs := range []struct {
		key  string
		caps []string
	}{
		{"sandbox.trusted_actions.capabilities", c.Sandbox.TrustedActions.Capabilities},
		{"sandbox.community_actions.capabilities", c.Sandbox.CommunityActions.Capabilities},
	} {
		for _, cap := range cs.caps {
			if cap == "*" {
				continue
			}
			if err := sandbox.Capability(cap).Validate(); err != nil {
				return bad(cs.key, "%v", err)
			}
		}
	}
	for _, p := range append(slices.Clone(c.Sandbox.TrustedActions.Patterns), c.Sandbox.CommunityActions.Patterns...) {
		if _, err := path.Match(p, ""); err != nil {
			return bad("sandbox patterns", "%q is not a valid pattern", p)
		}
	}
	if ca.WasmMemoryLimitMB < 1 || ca.WasmMemoryLimitMB > 4096 {
		return bad("sandbox.community_actions.wasm_memory_limit_mb", "must be from 1 to 4096, got %d", ca.WasmMemoryLimitMB)
	}
	if ca.WasmFuelLimit < 1 {
		return bad("sandbox.community_actions.wasm_fuel_limit", "must be positive, got %d", ca.WasmFuelLimit)
	}
	if c.Sandbox.MaxCPUTime <= 0 {
		return bad("sandbox.max_cpu_time", "must be positive")
	}
	for _, p := range c.Sandbox.TrustedActions.Patterns {
		for _, community := range []string{"community.x", "hub.x"} {
			if ok, _ := path.Match(p, community); ok || p == "*" {
				return bad("sandbox.trusted_actions.patterns", "pattern %q would trust community actions", p)
			}
		}
	}
	return nil
}

// minTokenLen is the shortest admin or worker token accepted: such
// tokens are compared as given, so they must be hard to guess.
const minTokenLen = 16

// ValidNodeID reports whether s can be a node id (cluster.node_id).
func ValidNodeID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) < 0
}

// SandboxPolicy is the sandbox policy the configuration describes.
// Community actions are isolated whatever it says (sandbox.Policy.ClassOf).
func (c *Config) SandboxPolicy() sandbox.Policy {
	caps := sandbox.Capabilities
	s := c.Sandbox
	return sandbox.Policy{
		Trusted: sandbox.Class{Name: "trusted", Patterns: s.TrustedActions.Patterns,
			Isolation: sandbox.Isolation(s.TrustedActions.Isolation), Allow: caps(s.TrustedActions.Capabilities)},
		Community: sandbox.Class{Name: "community", Patterns: s.CommunityActions.Patterns,
			Isolation: sandbox.IsolationIsolated, Allow: caps(s.CommunityActions.Capabilities)},
		Default: sandbox.Class{Name: "default", Isolation: sandbox.Isolation(s.DefaultIsolation)},
	}
}
