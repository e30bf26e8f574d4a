package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestClusterQuotasHoldExactly: with three nodes and 50 concurrent clients
// spread over them, a tenant's max_concurrent_executions is never exceeded
// (sampled throughout) and exactly max_workflows workflows are created.
func TestClusterQuotasHoldExactly(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	c.waitAgreement(3, 20*time.Second)

	var created struct {
		Token string `json:"token"`
	}
	c.nodes[0].p.mustCall("POST", "/v1/tenants", `{"id":"acme","quota":{"max_workflows":3,"max_concurrent_executions":5}}`, 201, &created)
	as := func(i int) *proc {
		q := *c.nodes[i%3].p
		q.token = created.Token
		return &q
	}

	// 50 clients race to create workflows: exactly 3 are made.
	var made, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			def := `{"nodes":[{"id":"wait","action":"builtin.delay","params":{"duration":"300ms"}}]}`
			switch status := as(i).call("PUT", fmt.Sprintf("/v1/workflows/w%d", i), def, nil); status {
			case 200, 201:
				made.Add(1)
			case 429:
				refused.Add(1)
			default:
				t.Errorf("PUT workflow %d: status %d", i, status)
			}
		}()
	}
	wg.Wait()
	if made.Load() != 3 || refused.Load() != 47 {
		t.Fatalf("%d workflows made, %d refused; want 3 and 47", made.Load(), refused.Load())
	}
	var list struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	as(0).mustCall("GET", "/v1/workflows?consistent=true", "", 200, &list)
	if len(list.Items) != 3 {
		t.Fatalf("the tenant lists %d workflows", len(list.Items))
	}
	wf := list.Items[0].ID

	// 50 clients start executions for 4 seconds while a sampler counts the
	// unfinished ones.
	stop := make(chan struct{})
	var maxSeen, samples, started, limited atomic.Int64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := 0
			for _, status := range []string{"running", "pending"} {
				var page struct {
					Items []struct{} `json:"items"`
				}
				if as(int(samples.Load())).call("GET", "/v1/executions?consistent=true&limit=1000&status="+status, "", &page) == 200 {
					n += len(page.Items)
				}
			}
			samples.Add(1)
			for {
				m := maxSeen.Load()
				if int64(n) <= m || maxSeen.CompareAndSwap(m, int64(n)) {
					break
				}
			}
		}
	}()
	deadline := time.Now().Add(4 * time.Second)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := as(i)
			for time.Now().Before(deadline) {
				switch status := p.tryCall("POST", "/v1/workflows/"+wf+"/executions", `{}`, nil); status {
				case 201:
					started.Add(1)
				case 429:
					limited.Add(1)
					time.Sleep(20 * time.Millisecond)
				default:
					t.Errorf("start: status %d", status)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	t.Logf("%d executions started, %d refused by the quota, at most %d unfinished in %d samples", started.Load(), limited.Load(), maxSeen.Load(), samples.Load())
	if maxSeen.Load() > 5 {
		t.Fatalf("%d unfinished executions seen, quota 5", maxSeen.Load())
	}
	if started.Load() < 5 || limited.Load() == 0 || samples.Load() < 5 {
		t.Fatalf("the test did not load the quota: %d started, %d refused, %d samples", started.Load(), limited.Load(), samples.Load())
	}
}
