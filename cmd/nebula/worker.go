package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/internal/config"
	"github.com/nebula-engine/nebula/internal/ids"
	"github.com/nebula-engine/nebula/sandbox"
	"github.com/nebula-engine/nebula/sandbox/wasm"
	"github.com/nebula-engine/nebula/storage"
)

func newWorkerCmd() *cobra.Command {
	var (
		servers, token, id string
		configFile, caCert string
		concurrency        int
		leaseTTL, drain    time.Duration
		allowPrivate       bool
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run actions for a Nebula cluster, pulling tasks over its HTTP API",
		Long: "Run actions for a Nebula cluster. A worker keeps no state: it claims tasks from\n" +
			"any of the given servers, runs them, and reports the results; when a server\n" +
			"dies it moves to the next. SIGTERM stops claiming and lets running tasks finish.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if v := flagOrEnv(cmd, "server", servers); v != "" {
				servers = v
			}
			if servers == "" {
				servers = os.Getenv("NEBULA_ADDR")
			}
			if servers == "" {
				return usagef("--server URL[,URL…] is required (or NEBULA_ADDR)")
			}
			var urls []string
			for _, u := range strings.Split(servers, ",") {
				u = strings.TrimRight(strings.TrimSpace(u), "/")
				if u == "" {
					continue
				}
				if !strings.Contains(u, "://") {
					u = "http://" + u
				}
				urls = append(urls, u)
			}
			if concurrency < 1 || concurrency > 4096 {
				return usagef("--concurrency must be from 1 to 4096, got %d", concurrency)
			}
			if leaseTTL < time.Second {
				return usagef("--lease-ttl must be at least 1s")
			}
			if id == "" {
				host, _ := os.Hostname()
				id = host + "-" + ids.New()[16:]
			}
			if !cmd.Flags().Changed("token") {
				token = os.Getenv("NEBULA_TOKEN")
			}
			// The sandbox settings come from a config file's [sandbox]
			// section, or the selfhost preset's.
			cfg, err := config.Load(nil, "selfhost")
			if configFile != "" {
				cfg, err = config.LoadFile(configFile, "selfhost")
			}
			if err == nil {
				// A worker serves no API: api.auth and its admin token
				// are the servers' business.
				cfg.API.Auth = false
				err = cfg.Validate()
			}
			if err != nil {
				return usageError{err}
			}
			if cmd.Flags().Changed("allow-private-network") {
				cfg.Sandbox.AllowPrivateNetwork = allowPrivate
			}
			tr, err := clientTransport(flagOrEnv(cmd, "ca-cert", caCert))
			if err != nil {
				return err
			}
			logger := newLogger().With("worker", id)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runWorker(ctx, workerOptions{
				urls: urls, token: token, id: id, concurrency: concurrency,
				leaseTTL: leaseTTL, drain: drain, cfg: cfg, logger: logger, transport: tr,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&servers, "server", "", "server URLs, comma separated (env NEBULA_SERVER or NEBULA_ADDR)")
	f.StringVar(&token, "token", "", "API token (env NEBULA_TOKEN)")
	f.StringVar(&caCert, "ca-cert", "", "PEM file of the CA that signed the servers' https certificate (env NEBULA_CA_CERT)")
	f.StringVar(&configFile, "config", "", "config file whose [sandbox] section applies (default: the selfhost preset's)")
	f.StringVar(&id, "id", "", "worker name in leases (default host name plus a random suffix)")
	f.IntVar(&concurrency, "concurrency", 16, "attempts run at once")
	f.DurationVar(&leaseTTL, "lease-ttl", 30*time.Second, "lease of a claimed task; renewed while it runs")
	f.DurationVar(&drain, "drain", 30*time.Second, "on SIGTERM, how long running tasks may take to finish")
	f.BoolVar(&allowPrivate, "allow-private-network", false, "let builtin.http reach private, loopback and link-local addresses")
	return cmd
}

type workerOptions struct {
	urls            []string
	token, id       string
	concurrency     int
	leaseTTL, drain time.Duration
	cfg             *config.Config
	logger          *slog.Logger
	transport       http.RoundTripper
}

// runWorker runs the engine's worker over a remote submitter until ctx
// ends, then drains.
func runWorker(ctx context.Context, o workerOptions) error {
	remote := &remoteSubmitter{urls: o.urls, token: o.token, leaseTTL: o.leaseTTL, logger: o.logger,
		hc: &http.Client{Transport: o.transport, Timeout: 2 * time.Minute}}
	run, err := newRunners(ctx, runnersConfig{
		cfg: o.cfg,
		actions: engine.Builtins(engine.BuiltinsConfig{
			Logger: o.logger,
			HTTP: engine.HTTPConfig{
				AllowPrivate: o.cfg.Sandbox.AllowPrivateNetwork,
				Credentials:  remoteCredentials{remote},
			},
		}),
		source: &remoteSource{r: remote, paths: make(map[string]string)},
		logger: o.logger,
	})
	if err != nil {
		return err
	}
	defer run.Close(context.WithoutCancel(ctx))
	w := engine.NewWorker(engine.WorkerConfig{
		Submitter:   remote,
		Holder:      o.id,
		Concurrency: o.concurrency,
		LeaseTTL:    o.leaseTTL,
		Runner:      run,
		// Claims long-poll on the server, so an empty one returns only
		// after a wait: ask again at once.
		PollInterval: 10 * time.Millisecond,
		Logger:       o.logger,
	})
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		<-ctx.Done()
		o.logger.Info("draining", "timeout", o.drain)
		select {
		case <-time.After(o.drain):
			cancelWork()
		case <-workCtx.Done():
		}
	}()
	o.logger.Info("worker running", "servers", strings.Join(o.urls, ","), "concurrency", o.concurrency)
	w.RunDrain(ctx, workCtx)
	o.logger.Info("worker stopped")
	return nil
}

// remoteSubmitter carries the worker's commands to a server over the worker
// protocol, moving to the next server when one fails.
type remoteSubmitter struct {
	urls     []string
	cur      atomic.Int64
	token    string
	leaseTTL time.Duration
	hc       *http.Client
	logger   *slog.Logger
}

// claimWait is how long one claim long-polls on the server.
const claimWait = 20 * time.Second

func (r *remoteSubmitter) Submit(ctx context.Context, cmd engine.Command) (engine.Result, error) {
	switch c := cmd.(type) {
	case *engine.ClaimTasks:
		var ans struct {
			Tasks []struct {
				ID           string          `json:"id"`
				Tenant       string          `json:"tenant"`
				ExecutionID  string          `json:"execution_id"`
				Node         string          `json:"node"`
				Attempt      int             `json:"attempt"`
				Action       string          `json:"action"`
				Params       json.RawMessage `json:"params"`
				Timeout      string          `json:"timeout"`
				LeaseToken   uint64          `json:"lease_token"`
				LeaseExpires time.Time       `json:"lease_expires"`
			} `json:"tasks"`
		}
		body := map[string]any{"worker": c.Holder, "max": c.Max, "wait": claimWait.String(), "lease_ttl": c.TTL.String()}
		if err := r.post(ctx, "/v1/tasks/claim", body, &ans); err != nil {
			return engine.Result{}, err
		}
		var res engine.Result
		for _, t := range ans.Tasks {
			timeout, _ := time.ParseDuration(t.Timeout)
			res.Tasks = append(res.Tasks, &storage.Task{
				TenantID: t.Tenant, ID: t.ID, ExecutionID: t.ExecutionID, Node: t.Node, Attempt: t.Attempt, Action: t.Action,
				Params: t.Params, Timeout: timeout, LeaseHolder: c.Holder, LeaseToken: t.LeaseToken, LeaseExpires: t.LeaseExpires,
			})
		}
		return res, nil
	case *engine.CompleteTask:
		path := "/v1/tasks/" + c.TaskID + "/complete"
		body := map[string]any{"token": c.Token, "output": c.Output}
		if c.Error != "" {
			path = "/v1/tasks/" + c.TaskID + "/fail"
			body = map[string]any{"token": c.Token, "error": c.Error, "retryable": c.Retryable}
		}
		return r.accepted(ctx, path, body)
	case *engine.RenewLease:
		return r.accepted(ctx, "/v1/tasks/"+c.TaskID+"/heartbeat", map[string]any{"token": c.Token, "lease_ttl": c.TTL.String()})
	}
	return engine.Result{}, fmt.Errorf("worker: %T cannot be sent to a server", cmd)
}

// accepted posts a report; 409 means the lease is gone.
func (r *remoteSubmitter) accepted(ctx context.Context, path string, body any) (engine.Result, error) {
	err := r.post(ctx, path, body, nil)
	var se *statusError
	if errors.As(err, &se) && se.status == http.StatusConflict {
		return engine.Result{Err: engine.ErrStaleLease}, nil
	}
	if err != nil {
		return engine.Result{}, err
	}
	return engine.Result{Accepted: true}, nil
}

type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// post sends body to the current server, trying each server once before
// giving up when they are unreachable or have no leader.
func (r *remoteSubmitter) post(ctx context.Context, path string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return r.call(ctx, http.MethodPost, path, raw, func(b []byte) error {
		if out == nil {
			return nil
		}
		return json.Unmarshal(b, out)
	})
}

// get fetches path from the current server, failing over like post; read
// gets the answer's body.
func (r *remoteSubmitter) get(ctx context.Context, path string, read func([]byte) error) error {
	return r.call(ctx, http.MethodGet, path, nil, read)
}

func (r *remoteSubmitter) call(ctx context.Context, method, path string, body []byte, read func([]byte) error) error {
	var last error
	for range r.urls {
		i := r.cur.Load()
		base := r.urls[int(i)%len(r.urls)]
		err := r.once(ctx, method, base+path, body, read)
		var se *statusError
		if err == nil || (errors.As(err, &se) && se.status != http.StatusServiceUnavailable) || ctx.Err() != nil {
			return err
		}
		last = err
		// This server is down or cut off: move on to the next.
		if r.cur.CompareAndSwap(i, i+1) {
			r.logger.Warn("server unavailable, switching", "server", base, "err", err)
		}
	}
	return fmt.Errorf("%w: no server answered: %v", storage.ErrNoLeader, last)
}

func (r *remoteSubmitter) once(ctx context.Context, method, url string, body []byte, read func([]byte) error) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Modules are the largest answers (64 MiB at most).
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20+1))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		if len(b) > 4<<10 {
			b = b[:4<<10]
		}
		return &statusError{status: resp.StatusCode, msg: "HTTP " + strconv.Itoa(resp.StatusCode) + ": " + string(bytes.TrimSpace(b))}
	}
	if read != nil {
		return read(b)
	}
	return nil
}

// remoteSource finds registered modules through the worker protocol.
type remoteSource struct {
	r *remoteSubmitter

	mu    sync.Mutex
	paths map[string]string // module ref → the path that serves it
}

func (s *remoteSource) Resolve(ctx context.Context, tenant, ref string) (wasm.Manifest, error) {
	path := "/v1/tasks/actions/" + url.PathEscape(tenant) + "/" + url.PathEscape(ref)
	var a struct {
		ID           string   `json:"id"`
		Version      string   `json:"version"`
		Capabilities []string `json:"capabilities"`
		SHA256       string   `json:"sha256"`
	}
	err := s.r.get(ctx, path, func(b []byte) error { return json.Unmarshal(b, &a) })
	if err != nil {
		return wasm.Manifest{}, err
	}
	caps := sandbox.Capabilities(a.Capabilities)
	m := wasm.Manifest{ID: a.ID, Version: a.Version, Capabilities: caps, ModuleRef: "sha256:" + a.SHA256}
	s.mu.Lock()
	s.paths[m.ModuleRef] = "/v1/tasks/actions/" + url.PathEscape(tenant) + "/" + url.PathEscape(a.ID+"@"+a.Version) + "/module"
	s.mu.Unlock()
	return m, nil
}

func (s *remoteSource) Load(ctx context.Context, ref string) ([]byte, error) {
	s.mu.Lock()
	path, ok := s.paths[ref]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("module %s: %w", ref, storage.ErrNotFound)
	}
	var module []byte
	err := s.r.get(ctx, path, func(b []byte) error {
		// The bytes must be the ones the manifest names, whoever served them.
		if got := storage.BlobRef(b); got != ref {
			return fmt.Errorf("module %s: the server sent %s: %w", ref, got, storage.ErrCorrupt)
		}
		module = b
		return nil
	})
	return module, err
}

// remoteCredentials opens an attempt's credentials through the worker
// protocol: the server hands them out only to the holder of the task's
// lease. Nothing is kept: each use asks again.
type remoteCredentials struct{ r *remoteSubmitter }

func (c remoteCredentials) Credential(ctx context.Context, _, name string) (string, map[string]string, error) {
	at, ok := engine.AttemptFrom(ctx)
	if !ok || at.LeaseToken == 0 {
		return "", nil, errors.New("no leased attempt to open a credential for")
	}
	path := "/v1/tasks/" + at.Key + "/credentials/" + url.PathEscape(name) + "?token=" + strconv.FormatUint(at.LeaseToken, 10)
	var cred struct {
		Type string            `json:"type"`
		Data map[string]string `json:"data"`
	}
	err := c.r.get(ctx, path, func(b []byte) error { return json.Unmarshal(b, &cred) })
	var se *statusError
	if errors.As(err, &se) {
		// The server's answer names the problem; the status says what
		// kind it is (404: no such credential).
		if se.status == http.StatusNotFound {
			return "", nil, fmt.Errorf("%w: %s", storage.ErrNotFound, se.msg)
		}
		return "", nil, errors.New(se.msg)
	}
	if err != nil {
		return "", nil, err
	}
	return cred.Type, cred.Data, nil
}
