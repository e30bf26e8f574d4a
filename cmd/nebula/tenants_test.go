package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// startAuthDesktop runs a desktop with auth on and the test admin token,
// and makes its proc send that token.
func startAuthDesktop(t *testing.T) *proc {
	t.Helper()
	dir := t.TempDir()
	conf := writeFile(t, dir, "auth.toml", "[api]\nauth = true\nadmin_token = \""+testAdminToken+"\"\n")
	p := startDesktop(t, filepath.Join(dir, "data"), "--config", conf)
	p.token = testAdminToken
	return p
}

// tokenLine finds the token that `tenant create` and `tenant token create`
// print.
var tokenLine = regexp.MustCompile(`(?m)^token: (nbt_\S+)$`)

// TestTenantsThroughTheBinary: two tenants made with the CLI each save a
// workflow of the same id and run it, and each sees only its own; a
// revoked token and no token are refused.
func TestTenantsThroughTheBinary(t *testing.T) {
	p := startAuthDesktop(t)
	dir := t.TempDir()
	admin := []string{"--token", testAdminToken}

	// One tenant's token from --output json, the other's from the table.
	var acme struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	r := nebulaCLI(t, p.url, "", append([]string{"tenant", "create", "acme", "--name", "Acme Corp", "--max-workflows", "10", "--output", "json"}, admin...)...).want(t, 0)
	if err := json.Unmarshal([]byte(r.stdout), &acme); err != nil || acme.ID != "acme" || !strings.HasPrefix(acme.Token, "nbt_") {
		t.Fatalf("tenant create --output json: %v\n%s", err, r.stdout)
	}
	r = nebulaCLI(t, p.url, "", append([]string{"tenant", "create", "globex"}, admin...)...).want(t, 0)
	m := tokenLine.FindStringSubmatch(r.stdout)
	if m == nil || !strings.Contains(r.stdout, "shown only once") {
		t.Fatalf("tenant create printed:\n%s", r.stdout)
	}
	globex := m[1]

	list := nebulaCLI(t, p.url, "", append([]string{"tenant", "list"}, admin...)...).want(t, 0)
	if !regexp.MustCompile(`(?s)^TENANT.*\ndefault .*\nacme\s+Acme Corp\s+10\s.*\nglobex\s+globex\s`).MatchString(list.stdout) {
		t.Errorf("tenant list:\n%s", list.stdout)
	}
	r = nebulaCLI(t, p.url, "", append([]string{"tenant", "quota", "acme", "--max-concurrent-executions", "4", "--output", "json"}, admin...)...).want(t, 0)
	if !strings.Contains(r.stdout, `"max_workflows":10`) || !strings.Contains(r.stdout, `"max_concurrent_executions":4`) {
		t.Errorf("tenant quota kept or set the wrong limits: %s", r.stdout)
	}

	// The same workflow id in each tenant, each its own.
	for _, tt := range []struct{ token, value string }{{acme.Token, "from acme"}, {globex, "from globex"}} {
		file := writeFile(t, dir, "wf.json", `{"id":"greet","name":"`+tt.value+`","nodes":[{"id":"a","action":"builtin.set","params":{"value":"`+tt.value+`"}}]}`)
		nebulaCLI(t, p.url, "", "workflow", "apply", "-f", file, "--token", tt.token).want(t, 0)
		r := nebulaCLI(t, p.url, "", "run", "greet", "--wait", "--token", tt.token).want(t, 0)
		if !strings.Contains(r.stdout, tt.value) {
			t.Errorf("run in the tenant of %q printed:\n%s", tt.value, r.stdout)
		}
	}
	for _, tt := range []struct{ token, mine, other string }{{acme.Token, "from acme", "from globex"}, {globex, "from globex", "from acme"}} {
		for _, what := range [][]string{{"workflow", "list"}, {"execution", "list"}, {"workflow", "get", "greet"}} {
			r := nebulaCLI(t, p.url, "", append(what, "--output", "json", "--token", tt.token)...).want(t, 0)
			if strings.Contains(r.stdout, tt.other) {
				t.Errorf("%v as %q shows the other tenant's: %s", what, tt.mine, r.stdout)
			}
		}
		r := nebulaCLI(t, p.url, "", "execution", "list", "--output", "json", "--token", tt.token).want(t, 0)
		var execs struct {
			Items []struct {
				Output json.RawMessage `json:"output"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &execs); err != nil || len(execs.Items) != 1 || !strings.Contains(string(execs.Items[0].Output), tt.mine) {
			t.Errorf("executions as %q: %v %s", tt.mine, err, r.stdout)
		}
	}

	// A second token works until it is revoked; the first still works.
	r = nebulaCLI(t, p.url, "", append([]string{"tenant", "token", "create", "acme"}, admin...)...).want(t, 0)
	m = tokenLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("tenant token create printed:\n%s", r.stdout)
	}
	second := m[1]
	secondID := strings.SplitN(second, "_", 3)[1]
	nebulaCLI(t, p.url, "", "workflow", "list", "--token", second).want(t, 0)
	tokens := nebulaCLI(t, p.url, "", append([]string{"tenant", "token", "list", "acme"}, admin...)...).want(t, 0)
	if !strings.Contains(tokens.stdout, secondID) || strings.Contains(tokens.stdout, "nbt_") {
		t.Errorf("tenant token list:\n%s", tokens.stdout)
	}
	nebulaCLI(t, p.url, "", append([]string{"tenant", "token", "revoke", "acme", secondID}, admin...)...).want(t, 0)
	nebulaCLI(t, p.url, "", "workflow", "list", "--token", second).want(t, 1).oneLineError(t, "unauthorized", "401")
	nebulaCLI(t, p.url, "", "workflow", "list", "--token", acme.Token).want(t, 0)
	saved := p.token
	p.token = second
	if status := p.call("GET", "/v1/workflows", "", nil); status != 401 {
		t.Errorf("GET /v1/workflows with a revoked token: %d, want 401", status)
	}
	p.token = ""
	if status := p.call("GET", "/v1/workflows", "", nil); status != 401 {
		t.Errorf("GET /v1/workflows without a token: %d, want 401", status)
	}
	p.token = saved

	// No token, a wrong token, a tenant token on an admin command.
	nebulaCLI(t, p.url, "", "workflow", "list").want(t, 1).oneLineError(t, "unauthorized", "401")
	nebulaCLI(t, p.url, "", "tenant", "create", "x", "--token", "wrong-token-wrong-token").want(t, 1).oneLineError(t, "unauthorized", "401")
	nebulaCLI(t, p.url, "", "tenant", "list", "--token", acme.Token).want(t, 1).oneLineError(t, "forbidden", "403")
	nebulaCLI(t, p.url, "", "tenant", "quota", "acme", "--max-workflows", "-1", "--token", testAdminToken).want(t, 2)
}

// TestAuthNeedsAdminToken: auth on without an admin token is a
// configuration error: exit code 2 and one line naming the key.
func TestAuthNeedsAdminToken(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "auth.toml", "[api]\nauth = true\n")
	cmd := exec.Command(binPath, "desktop", "--data", filepath.Join(dir, "data"), "--bind", "127.0.0.1:0", "--config", conf)
	cmd.Env = append(os.Environ(), "NEBULA_ADMIN_TOKEN=")
	out, err := cmd.CombinedOutput()
	r := cliResult{stderr: string(out), code: cmd.ProcessState.ExitCode()}
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("nebula desktop: %v\n%s", err, out)
	}
	r.want(t, 2).oneLineError(t, "api.admin_token")
}
