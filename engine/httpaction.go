package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/nebula-engine/nebula/sandbox"
)

// HTTPConfig configures builtin.http.
type HTTPConfig struct {
	// AllowPrivate allows loopback, private and link-local targets (the
	// desktop preset does). By default they are refused, so that a workflow
	// cannot reach the node's own services or a cloud metadata endpoint.
	AllowPrivate bool
	// DefaultTimeout bounds a request whose params give no timeout; zero
	// picks 30s.
	DefaultTimeout time.Duration
	// MaxTimeout is the largest timeout params may ask for; zero picks 5m.
	MaxTimeout time.Duration
	// MaxResponseBytes bounds the (decoded) response body, which becomes
	// part of the node's output; a larger body fails the attempt for good.
	// Zero picks 4 MiB.
	MaxResponseBytes int64
	// MaxRedirects is how many redirects a request follows; zero picks 10
	// and a negative value follows none.
	MaxRedirects int
	// Resolver resolves target host names; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// Credentials opens the credential a request names; nil means no
	// credential can be used here.
	Credentials CredentialSource
}

// CredentialSource opens a tenant's credential by name: its type and its
// data fields, in plain text.
type CredentialSource interface {
	Credential(ctx context.Context, tenant, name string) (typ string, data map[string]string, err error)
}

const (
	httpActionName          = "builtin.http"
	defaultHTTPTimeout      = 30 * time.Second
	defaultHTTPMaxTimeout   = 5 * time.Minute
	defaultHTTPMaxResponse  = 4 << 20
	defaultHTTPMaxRedirects = 10
)

// NewHTTPAction returns builtin.http. The action owns one client, so
// connections are reused across the attempts it runs.
func NewHTTPAction(cfg HTTPConfig) Action {
	var refuse func(netip.AddrPort) string
	if !cfg.AllowPrivate {
		refuse = func(ap netip.AddrPort) string { return privateAddrReason(ap.Addr()) }
	}
	return newHTTPAction(cfg, refuse)
}

// httpAction implements builtin.http.
type httpAction struct {
	defaultTimeout time.Duration
	maxTimeout     time.Duration
	maxResponse    int64
	maxRedirects   int
	client         *http.Client
	// refuse says why a destination may not be connected to, or "" when it
	// may; nil allows everything. It takes the port as well as the address
	// so that tests, whose servers all listen on loopback, can tell two of
	// them apart.
	refuse      func(netip.AddrPort) string
	credentials CredentialSource
}

func newHTTPAction(cfg HTTPConfig, refuse func(netip.AddrPort) string) *httpAction {
	a := &httpAction{
		defaultTimeout: orDefault(cfg.DefaultTimeout, defaultHTTPTimeout),
		maxTimeout:     orDefault(cfg.MaxTimeout, defaultHTTPMaxTimeout),
		maxResponse:    orDefault(cfg.MaxResponseBytes, defaultHTTPMaxResponse),
		maxRedirects:   cfg.MaxRedirects,
		refuse:         refuse,
		credentials:    cfg.Credentials,
	}
	switch {
	case a.maxRedirects == 0:
		a.maxRedirects = defaultHTTPMaxRedirects
	case a.maxRedirects < 0:
		a.maxRedirects = 0
	}

	dialer := &net.Dialer{Resolver: cfg.Resolver}
	if refuse != nil {
		// Control runs for every connection, after name resolution and
		// before connect, with the address actually dialed. Vetting there
		// rather than when parsing the URL covers names that resolve to
		// private addresses, DNS rebinding between checks, and redirects.
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("cannot vet dial address %q: %w", address, err)
			}
			if reason := refuse(ap); reason != "" {
				return &refusedError{addr: ap.Addr(), reason: reason}
			}
			return nil
		}
	}
	transport := &http.Transport{
		// No proxy, not even one from the environment: the guard would
		// vet the proxy's address, and the proxy would reach any target.
		Proxy:             nil,
		DialContext:       dialer.DialContext,
		ForceAttemptHTTP2: true, // a custom DialContext turns HTTP/2 off otherwise
		MaxIdleConns:      100,
		// The default of 2 idle connections per host made workflows that
		// call one API from many attempts at once dial (and leave in
		// TIME_WAIT) a connection for most requests.
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
	a.client = &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if err := checkHost(req.Context(), req.URL); err != nil {
				return err
			}
			if len(via) > a.maxRedirects {
				// Hand back the last redirect response, so that
				// fail_on_status decides what it means.
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	return a
}

// orDefault returns v, or def when v is not positive.
func orDefault[T time.Duration | int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// httpParams are the decoded params of builtin.http.
type httpParams struct {
	method       string
	url          *url.URL
	header       http.Header
	body         []byte // nil: no body
	timeout      time.Duration
	failOnStatus bool
	credential   string
}

// httpOutput is the output of builtin.http.
type httpOutput struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	// Body is the parsed JSON for a JSON response, else the text; a body
	// that is not UTF-8 goes to BodyBase64 instead, since JSON cannot
	// carry it as a string.
	Body       json.RawMessage `json:"body,omitempty"`
	BodyBase64 []byte          `json:"body_base64,omitempty"`
}

// Run sends one request.
func (a *httpAction) Run(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
	p, err := a.parseParams(params)
	if err != nil {
		return nil, paramError(httpActionName, err)
	}
	c := httpCall{method: p.method, url: redactURL(p.url)}
	// The policy's grants bound where the action goes and which
	// credentials it opens; redirects are checked too (CheckRedirect).
	if err := checkHost(ctx, p.url); err != nil {
		return nil, c.fail(err)
	}
	if p.credential != "" {
		if err := sandbox.Check(ctx, sandbox.Capability("credential:"+p.credential)); err != nil {
			return nil, c.fail(err)
		}
	}
	var secrets []string
	if p.credential != "" {
		if secrets, err = a.applyCredential(ctx, p); err != nil {
			return nil, c.fail(err)
		}
	}
	out, err := a.do(ctx, p, c)
	// The credential's values never leave the action: not in the output
	// (an echoing server), not in an error.
	return redact(out, err, secrets)
}

func (a *httpAction) do(ctx context.Context, p *httpParams, c httpCall) (json.RawMessage, error) {
	if err := a.vetLiteral(p.url); err != nil {
		return nil, c.fail(err)
	}

	if attempt, ok := AttemptFrom(ctx); ok && attempt.Key != "" && p.header.Get("Idempotency-Key") == "" {
		p.header.Set("Idempotency-Key", attempt.Key)
	}
	if p.header.Get("User-Agent") == "" {
		p.header.Set("User-Agent", "nebula")
	}

	reqCtx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var body io.Reader
	if p.body != nil {
		body = bytes.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(reqCtx, p.method, p.url.String(), body)
	if err != nil {
		return nil, c.fail(err)
	}
	req.Header = p.header
	if host := p.header.Get("Host"); host != "" {
		// net/http takes the Host header from the request, not its header map.
		req.Host = host
	}

	resp, err := a.client.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, reqCtx, p.timeout, err)
	}
	defer resp.Body.Close()

	if p.failOnStatus && !success(resp.StatusCode) {
		// Read a little so the connection can be reused; the body is not
		// part of the error, which may end up in logs and the journal.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, c.statusError(resp, a.maxRedirects)
	}

	if resp.ContentLength > a.maxResponse {
		return nil, c.fail(a.tooLarge())
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, a.maxResponse+1))
	if err != nil {
		return nil, c.transportError(ctx, reqCtx, p.timeout, err)
	}
	if int64(len(data)) > a.maxResponse {
		return nil, c.fail(a.tooLarge())
	}

	out := httpOutput{Status: resp.StatusCode, Headers: make(map[string]string, len(resp.Header))}
	for name, values := range resp.Header { // net/http has canonicalized the names
		out.Headers[name] = strings.Join(values, ", ")
	}
	switch {
	case isJSONMediaType(resp.Header.Get("Content-Type")) && json.Valid(data):
		out.Body = data // json.Marshal compacts it
	case utf8.Valid(data):
		out.Body, _ = json.Marshal(string(data))
	default:
		out.BodyBase64 = data
	}
	return json.Marshal(out)
}

func (a *httpAction) tooLarge() error {
	return fmt.Errorf("response body exceeds the limit of %d bytes", a.maxResponse)
}

// vetLiteral refuses a URL whose host is a forbidden IP address. The
// dial-time check would refuse it too; refusing here first means such a
// request does not even get a socket.
func (a *httpAction) vetLiteral(u *url.URL) error {
	if a.refuse == nil {
		return nil
	}
	addr, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return nil // a name: vetted once resolved, when dialing
	}
	var port uint64 = 80
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.ParseUint(p, 10, 16); err != nil {
			return fmt.Errorf("bad port %q", p)
		}
	}
	if reason := a.refuse(netip.AddrPortFrom(addr, uint16(port))); reason != "" {
		return &refusedError{addr: addr, reason: reason}
	}
	return nil
}

func success(status int) bool { return status >= 200 && status < 300 }

func isJSONMediaType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// httpCall names a request in errors: the method and the URL without its
// query, which often carries API keys.
type httpCall struct {
	method string
	url    string
}

func (c httpCall) fail(err error) error {
	return fmt.Errorf("%s: %s %s: %w", httpActionName, c.method, c.url, err)
}

// statusError reports an answer that fail_on_status rejects. 5xx and 429
// say the server may answer differently later, so they are retryable.
func (c httpCall) statusError(resp *http.Response, maxRedirects int) error {
	status := resp.Status
	if text := http.StatusText(resp.StatusCode); text != "" {
		status = fmt.Sprintf("%d %s", resp.StatusCode, text)
	}
	err := c.fail(errors.New(status))
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return Retryable(err)
	case isRedirect(resp):
		return fmt.Errorf("%w (redirect limit of %d reached)", err, maxRedirects)
	}
	return err
}

// isRedirect reports whether resp is one the client follows; one that
// reaches the action was not followed because of the redirect limit.
func isRedirect(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return resp.Header.Get("Location") != ""
	}
	return false
}

// transportError classifies a failure to get or read a response.
// reqCtx is ctx with the request timeout.
func (c httpCall) transportError(ctx, reqCtx context.Context, timeout time.Duration, err error) error {
	if refused, ok := errors.AsType[*refusedError](err); ok {
		return c.fail(refused)
	}
	if errors.Is(err, sandbox.ErrCapability) {
		// A redirect to a host not granted: policy, not a passing fault.
		if uerr, ok := errors.AsType[*url.Error](err); ok {
			err = uerr.Err
		}
		return c.fail(err)
	}
	switch {
	case ctx.Err() != nil:
		// The caller gave up (cancellation or its own deadline); whether
		// that deserves another attempt is its call, not the server's.
		return c.fail(context.Cause(ctx))
	case reqCtx.Err() != nil:
		return Retryable(c.fail(fmt.Errorf("timeout after %s", timeout)))
	}
	if certErr, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		// Another attempt would meet the same certificate.
		return c.fail(certErr)
	}
	// url.Error repeats the full URL, query included.
	if uerr, ok := errors.AsType[*url.Error](err); ok {
		err = uerr.Err
	}
	return Retryable(c.fail(err))
}

// checkHost checks that the action holds the capability to reach u's host.
func checkHost(ctx context.Context, u *url.URL) error {
	return sandbox.Check(ctx, sandbox.Capability("net:"+strings.ToLower(u.Hostname())))
}

// refusedError reports a destination the sandbox policy forbids.
type refusedError struct {
	addr   netip.Addr
	reason string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("destination %s is %s; private targets are not allowed by the sandbox policy", e.addr, e.reason)
}

// redactURL returns u without its query and fragment.
func redactURL(u *url.URL) string {
	r := *u
	r.RawQuery, r.ForceQuery, r.Fragment, r.RawFragment = "", false, "", ""
	return r.String()
}

var (
	cgnatPrefix     = netip.MustParsePrefix("100.64.0.0/10")
	thisNetPrefix   = netip.MustParsePrefix("0.0.0.0/8")
	reservedPrefix  = netip.MustParsePrefix("240.0.0.0/4") // includes broadcast
	siteLocalPrefix = netip.MustParsePrefix("fec0::/10")
	nat64Prefix     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFourPrefix = netip.MustParsePrefix("2002::/16")
	v4CompatPrefix  = netip.MustParsePrefix("::/96")
)

// privateAddrReason says what kind of non-public address ip is, or returns
// "" for an address the sandbox may reach. IPv6 forms that embed an IPv4
// address (mapped, compatible, NAT64, 6to4) are judged by that address,
// since they may lead to it.
func privateAddrReason(ip netip.Addr) string {
	ip = ip.WithZone("") // Prefix.Contains never matches an address with a zone
	switch {
	case ip.IsUnspecified():
		return "an unspecified address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsPrivate(), siteLocalPrefix.Contains(ip):
		return "a private address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case ip.IsMulticast():
		return "a multicast address"
	case cgnatPrefix.Contains(ip):
		return "a shared (CGNAT) address"
	case thisNetPrefix.Contains(ip):
		return "a \"this network\" address"
	case reservedPrefix.Contains(ip):
		return "a reserved address"
	}
	if v4, ok := embeddedIPv4(ip); ok {
		return privateAddrReason(v4)
	}
	return ""
}

// embeddedIPv4 returns the IPv4 address an IPv6 address stands for.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case ip.Is4In6():
		return ip.Unmap(), true
	case v4CompatPrefix.Contains(ip), nat64Prefix.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFourPrefix.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// parseParams decodes and checks params.
func (a *httpAction) parseParams(raw json.RawMessage) (*httpParams, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("want an object: %w", err)
	}
	p := &httpParams{method: http.MethodGet, header: make(http.Header), timeout: a.defaultTimeout, failOnStatus: true}
	var unknown []string
	// In key order, so that of several bad params the same one is named
	// every time.
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		value := fields[key]
		// An expression that yields null means the param is absent, except
		// for body, where null is a JSON value like any other.
		if key != "body" && isJSONNull(value) {
			continue
		}
		var err error
		switch key {
		case "method":
			err = p.parseMethod(value)
		case "url":
			err = p.parseURL(value)
		case "headers":
			err = p.parseHeaders(value)
		case "body":
			p.body = value
		case "timeout":
			err = p.parseTimeout(value, a.maxTimeout)
		case "fail_on_status":
			if json.Unmarshal(value, &p.failOnStatus) != nil {
				err = errors.New("fail_on_status must be a boolean")
			}
		case "credential":
			if json.Unmarshal(value, &p.credential) != nil || p.credential == "" {
				err = errors.New("credential must be a non-empty name")
			}
		default:
			unknown = append(unknown, key)
		}
		if err != nil {
			return nil, err
		}
	}
	switch len(unknown) {
	case 0:
	case 1:
		return nil, fmt.Errorf("unknown param %q", unknown[0])
	default:
		return nil, fmt.Errorf("unknown params %q", unknown)
	}
	if p.url == nil {
		return nil, errors.New("url is required")
	}
	if err := p.encodeBody(); err != nil {
		return nil, err
	}
	return p, nil
}

func isJSONNull(v json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

func (p *httpParams) parseMethod(v json.RawMessage) error {
	var m string
	if json.Unmarshal(v, &m) != nil || !isToken(m) {
		return fmt.Errorf("method must be an HTTP method name such as GET or POST, not %s", v)
	}
	// Workflow authors write "post" as often as "POST", and servers treat
	// method names case-sensitively.
	p.method = strings.ToUpper(m)
	return nil
}

func (p *httpParams) parseURL(v json.RawMessage) error {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return errors.New("url must be a string")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("url scheme must be http or https, not %q", u.Scheme)
	case u.Host == "":
		return errors.New("url has no host")
	case u.User != nil:
		// Kept out of URLs because URLs end up in logs and errors.
		return errors.New("url must not contain a user name or password; send an Authorization header instead")
	}
	p.url = u
	return nil
}

func (p *httpParams) parseHeaders(v json.RawMessage) error {
	var headers map[string]json.RawMessage
	if json.Unmarshal(v, &headers) != nil {
		return errors.New("headers must be an object")
	}
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		raw := headers[name]
		if isJSONNull(raw) {
			continue
		}
		if !isToken(name) {
			return fmt.Errorf("headers: %q is not a valid header name", name)
		}
		var values []string
		var one string
		switch {
		case json.Unmarshal(raw, &one) == nil:
			values = []string{one}
		case json.Unmarshal(raw, &values) == nil:
		default:
			return fmt.Errorf("headers: %s must be a string or an array of strings", name)
		}
		for _, value := range values {
			// Checked here because net/http would reject the request
			// later with an error that looks like a network failure.
			if !validHeaderValue(value) {
				return fmt.Errorf("headers: %s has a value with a control character", name)
			}
			p.header.Add(name, value)
		}
	}
	return nil
}

func (p *httpParams) parseTimeout(v json.RawMessage, maxTimeout time.Duration) error {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return errors.New(`timeout must be a duration string such as "10s"`)
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return fmt.Errorf(`timeout must be a duration such as "10s", not %q`, s)
	case d <= 0:
		return fmt.Errorf("timeout must be positive, not %q", s)
	case d > maxTimeout:
		return fmt.Errorf("timeout %s exceeds the maximum of %s", d, maxTimeout)
	}
	p.timeout = d
	return nil
}

// encodeBody turns the body param into bytes: a string is sent as it is,
// any other JSON value as JSON.
func (p *httpParams) encodeBody() error {
	if p.body == nil {
		return nil
	}
	if body := bytes.TrimSpace(p.body); len(body) > 0 && body[0] == '"' {
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return fmt.Errorf("body: %w", err)
		}
		p.body = []byte(s)
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p.body); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	p.body = buf.Bytes()
	if p.header.Get("Content-Type") == "" {
		p.header.Set("Content-Type", "application/json")
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of method
// and header names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v may be sent as a header value: no
// control characters other than tab, so no header injection.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// applyCredential opens the credential the params name and sets it on the
// request, returning its values for redaction.
func (a *httpAction) applyCredential(ctx context.Context, p *httpParams) ([]string, error) {
	if a.credentials == nil {
		return nil, fmt.Errorf("credential %q: no credentials on this worker", p.credential)
	}
	at, _ := AttemptFrom(ctx)
	typ, data, err := a.credentials.Credential(ctx, at.Tenant, p.credential)
	if err != nil {
		return nil, fmt.Errorf("credential %q: %w", p.credential, err)
	}
	switch typ {
	case "bearer":
		p.header.Set("Authorization", "Bearer "+data["token"])
		return []string{data["token"]}, nil
	case "basic":
		raw := data["username"] + ":" + data["password"]
		enc := base64.StdEncoding.EncodeToString([]byte(raw))
		p.header.Set("Authorization", "Basic "+enc)
		return []string{data["password"], enc}, nil
	case "header":
		p.header.Set(data["name"], data["value"])
		return []string{data["value"]}, nil
	}
	return nil, fmt.Errorf("credential %q has unknown type %q", p.credential, typ)
}

// redact replaces every secret, as raw text and as it appears escaped in
// JSON, by [REDACTED] in the output and the error.
func redact(out json.RawMessage, err error, secrets []string) (json.RawMessage, error) {
	for _, s := range secrets {
		if s == "" {
			continue
		}
		esc, _ := json.Marshal(s)
		esc = esc[1 : len(esc)-1]
		out = bytes.ReplaceAll(out, esc, []byte("[REDACTED]"))
		out = bytes.ReplaceAll(out, []byte(s), []byte("[REDACTED]"))
		if err != nil && strings.Contains(err.Error(), s) {
			err = redactedError{msg: strings.ReplaceAll(err.Error(), s, "[REDACTED]"), err: err}
		}
	}
	return out, err
}

// redactedError keeps the identity (retryable or not) of an error whose
// text had a secret removed.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }
