package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestCredentialsAreSealed stores a credential and checks that its value
// appears in no answer and in no file of the data directory: the Raft log,
// snapshots and the SQLite state hold ciphertext only.
func TestCredentialsAreSealed(t *testing.T) {
	dir := t.TempDir()
	p := startDesktop(t, dir)
	const secret = "ghp_s3cr3tV4lueNeverPrinted"
	var c map[string]any
	p.mustCall("POST", "/v1/credentials", `{"name":"github","type":"bearer","data":{"token":"`+secret+`"}}`, 201, &c)
	if c["name"] != "github" || c["type"] != "bearer" || c["data"] != nil {
		t.Fatalf("answer %v", c)
	}
	var list json.RawMessage
	p.mustCall("GET", "/v1/credentials", "", 200, &list)
	if bytes.Contains(list, []byte(secret)) || !bytes.Contains(list, []byte(`"github"`)) {
		t.Fatalf("list: %s", list)
	}
	for _, bad := range []string{
		`{"name":"x","type":"oauth","data":{"token":"a"}}`,
		`{"name":"x","type":"bearer","data":{"tok":"a"}}`,
		`{"name":"bad name","type":"bearer","data":{"token":"a"}}`,
		`{"name":"x","type":"basic","data":{"username":"u"}}`,
	} {
		p.mustCall("POST", "/v1/credentials", bad, 400, nil)
	}
	p.stop() // flush everything to disk
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret in plain text", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p = startDesktop(t, dir)
	p.mustCall("DELETE", "/v1/credentials/github", "", 204, nil)
	p.mustCall("DELETE", "/v1/credentials/github", "", 404, nil)
}
