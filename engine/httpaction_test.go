package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nebula-engine/nebula/sandbox"
)

// allGranted is what a permissive policy grants builtin.http.
func allGranted(ctx context.Context) context.Context {
	return sandbox.WithGrants(ctx, HTTPCapabilities)
}

// runHTTP runs action with params and every capability, and decodes its
// output.
func runHTTP(ctx context.Context, t *testing.T, action Action, params map[string]any) (map[string]any, error) {
	t.Helper()
	return runHTTPGranted(allGranted(ctx), t, action, params)
}

// runHTTPGranted runs action with params under the grants in ctx.
func runHTTPGranted(ctx context.Context, t *testing.T, action Action, params map[string]any) (map[string]any, error) {
	t.Helper()
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	res, err := action.Run(ctx, raw)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(res, &out); err != nil {
		t.Fatalf("output %s: %v", res, err)
	}
	return out, nil
}

// newHTTPTestServer serves the responses the functional tests look at.
func newHTTPTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "headers": r.Header, "body": string(body)})
	})
	respond := func(path, contentType string, body []byte) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Write(body)
		})
	}
	respond("/json", "application/json", []byte(`{"a": 1, "b": [true, null]}`))
	respond("/problem", "application/problem+json; charset=utf-8", []byte(`{"title": "nope"}`))
	respond("/badjson", "application/json", []byte(`not json`))
	respond("/text", "text/plain; charset=utf-8", []byte("hello"))
	respond("/binary", "application/octet-stream", []byte{0xff, 0xfe, 0x00})
	mux.HandleFunc("/multi", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/json", http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(code)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPResponses(t *testing.T) {
	srv := newHTTPTestServer(t)
	action := NewHTTPAction(HTTPConfig{AllowPrivate: true})
	attemptCtx := WithAttempt(context.Background(), Attempt{
		ExecutionID: "ex1", Node: "call", Number: 2, Key: "ex1/call/2",
	})

	// echoed returns what /echo saw.
	echoed := func(t *testing.T, out map[string]any) (method string, header http.Header, body string) {
		t.Helper()
		var e struct {
			Method  string
			Headers http.Header
			Body    string
		}
		b, _ := json.Marshal(out["body"])
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("echo body %s: %v", b, err)
		}
		return e.Method, e.Headers, e.Body
	}

	tests := []struct {
		name   string
		ctx    context.Context
		params map[string]any // url is a path on srv
		check  func(t *testing.T, out map[string]any)
	}{
		{
			name:   "GET JSON is parsed",
			params: map[string]any{"url": "/json"},
			check: func(t *testing.T, out map[string]any) {
				want := map[string]any{"a": 1.0, "b": []any{true, nil}}
				if out["status"] != 200.0 || !reflect.DeepEqual(out["body"], want) {
					t.Errorf("output %v, want status 200 and body %v", out, want)
				}
			},
		},
		{
			name:   "+json media type is parsed",
			params: map[string]any{"url": "/problem"},
			check: func(t *testing.T, out map[string]any) {
				if want := map[string]any{"title": "nope"}; !reflect.DeepEqual(out["body"], want) {
					t.Errorf("body %v, want %v", out["body"], want)
				}
			},
		},
		{
			name:   "text body",
			params: map[string]any{"url": "/text"},
			check: func(t *testing.T, out map[string]any) {
				headers, _ := out["headers"].(map[string]any)
				if out["body"] != "hello" || headers["Content-Type"] != "text/plain; charset=utf-8" {
					t.Errorf("output %v, want text body and its Content-Type", out)
				}
			},
		},
		{
			name:   "invalid JSON stays text",
			params: map[string]any{"url": "/badjson"},
			check: func(t *testing.T, out map[string]any) {
				if out["body"] != "not json" {
					t.Errorf("body %v, want the text", out["body"])
				}
			},
		},
		{
			name:   "non-UTF-8 body is base64",
			params: map[string]any{"url": "/binary"},
			check: func(t *testing.T, out map[string]any) {
				if _, ok := out["body"]; ok || out["body_base64"] != "//4A" {
					t.Errorf("output %v, want only body_base64 //4A", out)
				}
			},
		},
		{
			name:   "repeated response header is joined",
			params: map[string]any{"url": "/multi"},
			check: func(t *testing.T, out map[string]any) {
				headers, _ := out["headers"].(map[string]any)
				if headers["X-Multi"] != "a, b" {
					t.Errorf("headers %v, want X-Multi: a, b", headers)
				}
			},
		},
		{
			name:   "redirect is followed",
			params: map[string]any{"url": "/redirect"},
			check: func(t *testing.T, out map[string]any) {
				if body, _ := out["body"].(map[string]any); body["a"] != 1.0 {
					t.Errorf("output %v, want the /json body", out)
				}
			},
		},
		{
			name:   "object body is sent as JSON",
			params: map[string]any{"url": "/echo", "method": "post", "body": map[string]any{"x": 1}},
			check: func(t *testing.T, out map[string]any) {
				method, header, body := echoed(t, out)
				if method != "POST" || header.Get("Content-Type") != "application/json" || body != `{"x":1}` {
					t.Errorf("server saw %s %q %s, want POST application/json {\"x\":1}", method, header.Get("Content-Type"), body)
				}
			},
		},
		{
			name:   "null body is sent as JSON",
			params: map[string]any{"url": "/echo", "method": "PUT", "body": nil},
			check: func(t *testing.T, out map[string]any) {
				_, header, body := echoed(t, out)
				if header.Get("Content-Type") != "application/json" || body != "null" {
					t.Errorf("server saw %q %s, want application/json null", header.Get("Content-Type"), body)
				}
			},
		},
		{
			name: "string body is sent as is",
			params: map[string]any{"url": "/echo", "method": "POST", "body": "a=1&b=2",
				"headers": map[string]any{"content-type": "application/x-www-form-urlencoded"}},
			check: func(t *testing.T, out map[string]any) {
				_, header, body := echoed(t, out)
				if header.Get("Content-Type") != "application/x-www-form-urlencoded" || body != "a=1&b=2" {
					t.Errorf("server saw %q %s", header.Get("Content-Type"), body)
				}
			},
		},
		{
			name: "params Content-Type wins over JSON",
			params: map[string]any{"url": "/echo", "method": "POST", "body": []int{1, 2},
				"headers": map[string]any{"Content-Type": "application/vnd.api+json"}},
			check: func(t *testing.T, out map[string]any) {
				_, header, body := echoed(t, out)
				if got := header.Values("Content-Type"); len(got) != 1 || got[0] != "application/vnd.api+json" || body != "[1,2]" {
					t.Errorf("server saw %q %s", got, body)
				}
			},
		},
		{
			name: "headers are forwarded",
			params: map[string]any{"url": "/echo",
				"headers": map[string]any{"X-One": "1", "x-many": []string{"a", "b"}, "X-Absent": nil}},
			check: func(t *testing.T, out map[string]any) {
				_, header, _ := echoed(t, out)
				if header.Get("X-One") != "1" || !reflect.DeepEqual(header.Values("X-Many"), []string{"a", "b"}) ||
					header.Get("User-Agent") != "nebula" || header.Values("X-Absent") != nil {
					t.Errorf("server saw headers %v", header)
				}
				if header.Get("Idempotency-Key") != "" {
					t.Errorf("Idempotency-Key %q without an attempt in the context", header.Get("Idempotency-Key"))
				}
			},
		},
		{
			name:   "Idempotency-Key is the attempt key",
			ctx:    attemptCtx,
			params: map[string]any{"url": "/echo"},
			check: func(t *testing.T, out map[string]any) {
				if _, header, _ := echoed(t, out); header.Get("Idempotency-Key") != "ex1/call/2" {
					t.Errorf("Idempotency-Key %q, want ex1/call/2", header.Get("Idempotency-Key"))
				}
			},
		},
		{
			name:   "Idempotency-Key from params wins",
			ctx:    attemptCtx,
			params: map[string]any{"url": "/echo", "headers": map[string]any{"idempotency-key": "mine"}},
			check: func(t *testing.T, out map[string]any) {
				if _, header, _ := echoed(t, out); !reflect.DeepEqual(header.Values("Idempotency-Key"), []string{"mine"}) {
					t.Errorf("Idempotency-Key %q, want just mine", header.Values("Idempotency-Key"))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			tt.params["url"] = srv.URL + tt.params["url"].(string)
			out, err := runHTTP(ctx, t, action, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, out)
		})
	}
}

func TestHTTPStatus(t *testing.T) {
	srv := newHTTPTestServer(t)
	action := NewHTTPAction(HTTPConfig{AllowPrivate: true, MaxRedirects: 2})

	tests := []struct {
		path          string
		failOnStatus  any // nil: not given
		wantErr       string
		wantRetryable bool
		wantStatus    float64
	}{
		{path: "/status/503", wantErr: "503 Service Unavailable", wantRetryable: true},
		{path: "/status/500", wantErr: "500 Internal Server Error", wantRetryable: true},
		{path: "/status/429", wantErr: "429 Too Many Requests", wantRetryable: true},
		{path: "/status/404", wantErr: "404 Not Found"},
		{path: "/status/400", wantErr: "400 Bad Request"},
		{path: "/loop", wantErr: "302 Found (redirect limit of 2 reached)"},
		{path: "/status/204", wantStatus: 204},
		{path: "/status/404", failOnStatus: false, wantStatus: 404},
		{path: "/status/503", failOnStatus: false, wantStatus: 503},
		{path: "/loop", failOnStatus: false, wantStatus: 302},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.path, " fail_on_status=", tt.failOnStatus), func(t *testing.T) {
			// The query stands for an API key, which errors must not show.
			params := map[string]any{"url": srv.URL + tt.path + "?api_key=secret"}
			if tt.failOnStatus != nil {
				params["fail_on_status"] = tt.failOnStatus
			}
			out, err := runHTTP(context.Background(), t, action, params)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if out["status"] != tt.wantStatus {
					t.Errorf("status %v, want %v", out["status"], tt.wantStatus)
				}
				return
			}
			want := "builtin.http: GET " + srv.URL + tt.path + ": " + tt.wantErr
			if err == nil || err.Error() != want {
				t.Fatalf("error %v, want %q", err, want)
			}
			if got := errors.Is(err, ErrRetryable); got != tt.wantRetryable {
				t.Errorf("retryable = %v, want %v", got, tt.wantRetryable)
			}
		})
	}
}

func TestHTTPConnectionRefusedIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	action := NewHTTPAction(HTTPConfig{AllowPrivate: true})
	_, err := runHTTP(context.Background(), t, action, map[string]any{"url": addr + "/?token=secret"})
	if !errors.Is(err, ErrRetryable) {
		t.Fatalf("error %v, want a retryable one", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the query", err)
	}
}

func TestHTTPTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	hang := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", hang)
	signalStarted := sync.OnceFunc(func() { close(started) })
	mux.HandleFunc("/slow-started", func(w http.ResponseWriter, r *http.Request) {
		signalStarted()
		hang(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// Runs before srv.Close, which waits for handlers.
	t.Cleanup(func() { close(release) })
	action := NewHTTPAction(HTTPConfig{AllowPrivate: true})

	t.Run("timeout", func(t *testing.T) {
		_, err := runHTTP(context.Background(), t, action, map[string]any{"url": srv.URL + "/slow", "timeout": "50ms"})
		want := "builtin.http: GET " + srv.URL + "/slow: timeout after 50ms"
		if err == nil || err.Error() != want {
			t.Fatalf("error %v, want %q", err, want)
		}
		if !errors.Is(err, ErrRetryable) {
			t.Error("a timeout is not retryable")
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-started
			cancel()
		}()
		_, err := runHTTP(ctx, t, action, map[string]any{"url": srv.URL + "/slow-started"})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if errors.Is(err, ErrRetryable) {
			t.Error("a cancelled request is retryable")
		}
	})
}

func TestHTTPMaxResponseBytes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/sized/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		w.Write([]byte(strings.Repeat("x", n)))
	})
	mux.HandleFunc("/chunked/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		for range n {
			w.Write([]byte("x"))
			w.(http.Flusher).Flush() // no Content-Length
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	action := NewHTTPAction(HTTPConfig{AllowPrivate: true, MaxResponseBytes: 8})

	tests := []struct {
		path    string
		wantErr bool
	}{
		{"/sized/8", false},
		{"/sized/9", true},
		{"/chunked/8", false},
		{"/chunked/9", true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			out, err := runHTTP(context.Background(), t, action, map[string]any{"url": srv.URL + tt.path})
			if !tt.wantErr {
				if err != nil || out["body"] != "xxxxxxxx" {
					t.Fatalf("output %v, error %v; want 8 bytes", out, err)
				}
				return
			}
			want := "builtin.http: GET " + srv.URL + tt.path + ": response body exceeds the limit of 8 bytes"
			if err == nil || err.Error() != want {
				t.Fatalf("error %v, want %q", err, want)
			}
			if errors.Is(err, ErrRetryable) {
				t.Error("an oversized response is retryable")
			}
		})
	}
}

// fakeResolver returns a resolver that answers every A query with ip and
// any other query with no records, without a real DNS server.
func fakeResolver(ip netip.Addr) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			client, server := net.Pipe()
			go answerDNS(server, ip)
			return client, nil
		},
	}
}

// answerDNS answers one DNS query in TCP framing, which the resolver uses
// on a conn that is not a net.PacketConn.
func answerDNS(conn net.Conn, ip netip.Addr) {
	defer conn.Close()
	var size [2]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return
	}
	q := make([]byte, binary.BigEndian.Uint16(size[:]))
	if _, err := io.ReadFull(conn, q); err != nil || len(q) < 12 {
		return
	}
	// The question follows the 12-byte header: a name as labels ending
	// with an empty one, then type and class.
	end := 12
	for end < len(q) && q[end] != 0 {
		end += int(q[end]) + 1
	}
	end += 5
	if end > len(q) {
		return
	}
	isA := binary.BigEndian.Uint16(q[end-4:]) == 1
	answers := uint16(0)
	if isA {
		answers = 1
	}
	resp := append([]byte{}, q[:2]...) // ID
	resp = append(resp, 0x81, 0x80)    // a response; recursion desired and available; no error
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, answers)
	resp = append(resp, 0, 0, 0, 0) // no authority or additional records
	resp = append(resp, q[12:end]...)
	if isA {
		a := ip.As4()
		resp = append(resp,
			0xc0, 12, // name: pointer to the question's
			0, 1, 0, 1, // type A, class IN
			0, 0, 0, 60, // TTL
			0, 4) // length
		resp = append(resp, a[:]...)
	}
	resp = append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...)
	conn.Write(resp)
}

func TestHTTPGuardRefusesPrivateTargets(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	action := NewHTTPAction(HTTPConfig{Resolver: fakeResolver(netip.MustParseAddr("127.0.0.1"))})

	const policy = "; private targets are not allowed by the sandbox policy"
	tests := []struct {
		url     string
		wantErr string
	}{
		{
			url:     "http://169.254.169.254/",
			wantErr: "builtin.http: GET http://169.254.169.254/: destination 169.254.169.254 is a link-local address" + policy,
		},
		{url: fmt.Sprintf("http://127.0.0.1:%d/", port), wantErr: "destination 127.0.0.1 is a loopback address"},
		{url: fmt.Sprintf("http://[::1]:%d/", port), wantErr: "destination ::1 is a loopback address"},
		{url: fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", port), wantErr: "destination ::ffff:127.0.0.1 is a loopback address"},
		{url: fmt.Sprintf("http://0.0.0.0:%d/", port), wantErr: "destination 0.0.0.0 is an unspecified address"},
		{url: "http://10.0.0.1/", wantErr: "destination 10.0.0.1 is a private address"},
		{url: "https://[fd00::1]/", wantErr: "destination fd00::1 is a private address"},
		{url: "http://100.64.0.1/", wantErr: "destination 100.64.0.1 is a shared (CGNAT) address"},
		{url: "http://[64:ff9b::a9fe:a9fe]/", wantErr: "destination 64:ff9b::a9fe:a9fe is a link-local address"},
		// Names are vetted once resolved, when dialing.
		{url: fmt.Sprintf("http://api.internal.test:%d/?key=secret", port), wantErr: "builtin.http: GET http://api.internal.test:" + strconv.Itoa(port) + "/: destination 127.0.0.1 is a loopback address" + policy},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := runHTTP(context.Background(), t, action, map[string]any{"url": tt.url})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
			if !strings.HasSuffix(err.Error(), policy) {
				t.Errorf("error %q does not name the policy", err)
			}
			if errors.Is(err, ErrRetryable) {
				t.Error("a refusal is retryable")
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server got %d requests, want none", n)
	}
}

func TestHTTPGuardAllowsPublicTargets(t *testing.T) {
	// Only the policy is exercised here: nothing is dialed.
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"} {
		if reason := privateAddrReason(netip.MustParseAddr(s)); reason != "" {
			t.Errorf("%s is %s, want it allowed", s, reason)
		}
	}
	for s, want := range map[string]string{
		"127.0.0.2":              "a loopback address",
		"::":                     "an unspecified address",
		"0.1.2.3":                `a "this network" address`,
		"172.16.0.1":             "a private address",
		"192.168.1.1":            "a private address",
		"fec0::1":                "a private address",
		"fe80::1%eth0":           "a link-local address",
		"224.0.0.1":              "a multicast address",
		"ff02::1":                "a multicast address",
		"255.255.255.255":        "a reserved address",
		"::ffff:10.1.2.3":        "a private address",
		"::7f00:1":               "a loopback address", // IPv4-compatible
		"64:ff9b::7f00:1":        "a loopback address", // NAT64
		"2002:a9fe:a9fe::1":      "a link-local address",
		"::ffff:169.254.169.254": "a link-local address",
	} {
		if got := privateAddrReason(netip.MustParseAddr(s)); got != want {
			t.Errorf("%s is %q, want %q", s, got, want)
		}
	}
}

func TestHTTPGuardCoversRedirects(t *testing.T) {
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
	}))
	t.Cleanup(target.Close)
	origin := httptest.NewServer(http.RedirectHandler(target.URL+"/landing", http.StatusFound))
	t.Cleanup(origin.Close)
	targetPort := uint16(target.Listener.Addr().(*net.TCPAddr).Port)

	tests := []struct {
		name       string
		refuse     bool
		wantErr    string
		targetHits int32
	}{
		{name: "target allowed", targetHits: 1},
		{name: "target refused", refuse: true, wantErr: "destination 127.0.0.1 is the test's forbidden port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targetHits.Store(0)
			// Both servers are on loopback, so the policy tells them
			// apart by port: the origin is allowed, the target is not.
			action := newHTTPAction(HTTPConfig{}, func(ap netip.AddrPort) string {
				if tt.refuse && ap.Port() == targetPort {
					return "the test's forbidden port"
				}
				return ""
			})
			_, err := runHTTP(context.Background(), t, action, map[string]any{"url": origin.URL})
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
				}
				if errors.Is(err, ErrRetryable) {
					t.Error("a refusal is retryable")
				}
			}
			if n := targetHits.Load(); n != tt.targetHits {
				t.Errorf("the redirect target got %d requests, want %d", n, tt.targetHits)
			}
		})
	}
}

func TestHTTPBadParams(t *testing.T) {
	action := NewHTTPAction(HTTPConfig{AllowPrivate: true})
	const target = "http://127.0.0.1:1/" // nothing is sent: every case fails first

	tests := []struct {
		name    string
		params  string
		wantErr string
	}{
		{"not an object", `[1]`, "builtin.http: params: want an object"},
		{"missing url", `{}`, "builtin.http: params: url is required"},
		{"null url", `{"url": null}`, "builtin.http: params: url is required"},
		{"url not a string", `{"url": 1}`, "builtin.http: params: url must be a string"},
		{"ftp scheme", `{"url": "ftp://example.com/f"}`, `builtin.http: params: url scheme must be http or https, not "ftp"`},
		{"relative url", `{"url": "/x"}`, `builtin.http: params: url scheme must be http or https, not ""`},
		{"no host", `{"url": "http:///x"}`, "builtin.http: params: url has no host"},
		{"userinfo", `{"url": "http://me:pw@127.0.0.1:1/"}`, "builtin.http: params: url must not contain a user name or password"},
		{"unknown param", `{"url": "` + target + `", "retries": 3}`, `builtin.http: params: unknown param "retries"`},
		{"bad method", `{"url": "` + target + `", "method": "GE T"}`, "builtin.http: params: method must be an HTTP method name"},
		{"bad timeout", `{"url": "` + target + `", "timeout": "soon"}`, `builtin.http: params: timeout must be a duration such as "10s", not "soon"`},
		{"numeric timeout", `{"url": "` + target + `", "timeout": 10}`, "builtin.http: params: timeout must be a duration string"},
		{"negative timeout", `{"url": "` + target + `", "timeout": "-1s"}`, "builtin.http: params: timeout must be positive"},
		{"timeout over max", `{"url": "` + target + `", "timeout": "1h"}`, "builtin.http: params: timeout 1h0m0s exceeds the maximum of 5m0s"},
		{"headers not an object", `{"url": "` + target + `", "headers": "X-A: 1"}`, "builtin.http: params: headers must be an object"},
		{"header value type", `{"url": "` + target + `", "headers": {"X-A": 1}}`, "builtin.http: params: headers: X-A must be a string or an array of strings"},
		{"header injection", `{"url": "` + target + `", "headers": {"X-A": "1\r\nX-B: 2"}}`, "builtin.http: params: headers: X-A has a value with a control character"},
		{"header name", `{"url": "` + target + `", "headers": {"X A": "1"}}`, `builtin.http: params: headers: "X A" is not a valid header name`},
		{"fail_on_status type", `{"url": "` + target + `", "fail_on_status": "no"}`, "builtin.http: params: fail_on_status must be a boolean"},
		{"credential without a source", `{"url": "` + target + `", "credential": "github"}`, "builtin.http: GET " + target + `: credential "github": no credentials on this worker`},
		{"empty credential", `{"url": "` + target + `", "credential": ""}`, "builtin.http: params: credential must be a non-empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := action.Run(allGranted(context.Background()), json.RawMessage(tt.params))
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrRetryable) {
				t.Error("a params error is retryable")
			}
		})
	}
}

func TestHTTPCapabilities(t *testing.T) {
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
	}))
	t.Cleanup(target.Close)
	// The redirect names the target by another host name than the origin
	// uses, so that grants can tell them apart.
	_, port, _ := net.SplitHostPort(target.Listener.Addr().String())
	origin := httptest.NewServer(http.RedirectHandler("http://localhost:"+port+"/landing", http.StatusFound))
	t.Cleanup(origin.Close)
	action := NewHTTPAction(HTTPConfig{AllowPrivate: true})

	tests := []struct {
		name       string
		granted    []sandbox.Capability
		params     map[string]any
		wantErr    string
		targetHits int32
	}{
		{"every host", []sandbox.Capability{"net:*"}, map[string]any{"url": origin.URL}, "", 1},
		{"both hosts", []sandbox.Capability{"net:127.0.0.1", "net:localhost"}, map[string]any{"url": origin.URL}, "", 1},
		{"nothing granted", nil, map[string]any{"url": origin.URL}, "capability not granted: net:127.0.0.1", 0},
		{"redirect to a host not granted", []sandbox.Capability{"net:127.0.0.1"}, map[string]any{"url": origin.URL}, "capability not granted: net:localhost", 0},
		{"credential not granted", []sandbox.Capability{"net:*"}, map[string]any{"url": origin.URL, "credential": "github"}, "capability not granted: credential:github", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targetHits.Store(0)
			ctx := sandbox.WithGrants(context.Background(), tt.granted)
			_, err := runHTTPGranted(ctx, t, action, tt.params)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
				}
				if errors.Is(err, ErrRetryable) {
					t.Error("a capability refusal is retryable")
				}
			}
			if n := targetHits.Load(); n != tt.targetHits {
				t.Errorf("the redirect target got %d requests, want %d", n, tt.targetHits)
			}
		})
	}
}

// TestHTTPReusesConnections runs rounds of concurrent requests to one host:
// after the first round, requests go over the idle connections it left
// instead of dialing new ones.
func TestHTTPReusesConnections(t *testing.T) {
	var dialed atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	action := NewHTTPAction(HTTPConfig{AllowPrivate: true})

	const concurrent, rounds = 16, 5
	for range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, concurrent)
		for range concurrent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := runHTTP(t.Context(), t, action, map[string]any{"url": srv.URL})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// Keeping 16 connections, the rounds after the first reuse them; a
	// connection still on its way back to the pool when the next round
	// starts (a loaded machine) costs a dial, hence the slack. Go's
	// default of 2 idle connections dials about 70.
	if n := dialed.Load(); n > 2*concurrent {
		t.Fatalf("%d rounds of %d requests dialed %d connections, want at most %d", rounds, concurrent, n, 2*concurrent)
	}
}
