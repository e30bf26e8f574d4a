package cluster

import (
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// Peers authenticate to each other's internal endpoints with a shared
// secret (derived from the master key every node holds): without it,
// anyone who reaches a node's API port could propose commands or read
// blobs directly. A node sends its first secret and accepts any of them,
// so that a rolling change of the master key keeps the cluster talking.

func setPeerAuth(req *http.Request, secrets [][]byte) {
	if len(secrets) > 0 {
		req.Header.Set("Authorization", "Bearer "+hex.EncodeToString(secrets[0]))
	}
}

// requirePeer refuses requests without one of the secrets; no secrets let
// every request through (a group of one in tests).
func requirePeer(secrets [][]byte, next http.Handler) http.Handler {
	if len(secrets) == 0 {
		return next
	}
	want := make([][]byte, len(secrets))
	for i, s := range secrets {
		want[i] = []byte(hex.EncodeToString(s))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		ok := 0
		for _, s := range want {
			ok |= subtle.ConstantTimeCompare([]byte(got), s)
		}
		if ok != 1 {
			http.Error(w, "internal endpoints are for cluster peers", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
