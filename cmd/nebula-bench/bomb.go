package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// The bomb workload asks whether one tenant's costly workflow can take the
// state machine from the others. Tenant bench-b starts one-node
// executions back to back, one client, throughout; after a second of that,
// tenant bench-a starts one execution of a workflow of n parallel
// builtin.set nodes, each mapping a list of size elements over another
// (about 50,000 CEL cost units and 2 ms of CPU each for 59). The run ends a
// second after the bomb's execution does, and prints bench-b's latencies
// before and during the bomb. It needs a server with tenants on (the admin
// token in -token or NEBULA_TOKEN); with auth off both run as the default
// tenant.

const bombOne = `{"id":"bench-one","nodes":[{"id":"a","action":"builtin.set","params":{"value":"{{ input.n + 1 }}"}}]}`

func bombWorkflow(n int) string {
	nodes := make([]string, n)
	for i := range nodes {
		nodes[i] = fmt.Sprintf(`{"id":"n%d","action":"builtin.set","params":{"value":"{{ input.a.map(x, input.a.map(y, x * y)).size() }}"}}`, i)
	}
	return fmt.Sprintf(`{"id":"bench-bomb","nodes":[%s]}`, strings.Join(nodes, ","))
}

// tenantRequest is do for a request on behalf of tenant (admin token).
func tenantRequest(ctx context.Context, hc *http.Client, tenant, method, url, body string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewBufferString(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Nebula-Tenant", tenant)
	authorize(req)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

func runBomb(addr string, nodes, size int) error {
	hc := &http.Client{Timeout: 2 * time.Minute}
	ctx := context.Background()
	a, b := "bench-a", "bench-b"
	for _, t := range []string{a, b} {
		code, err := tenantRequest(ctx, hc, "default", http.MethodPost, addr+"/v1/tenants", fmt.Sprintf(`{"id":%q}`, t), nil)
		switch {
		case code == http.StatusNotFound:
			a, b = "default", "default" // auth off: one tenant
		case err != nil && code != http.StatusConflict:
			return fmt.Errorf("create tenant %s: %w", t, err)
		}
	}
	if _, err := tenantRequest(ctx, hc, a, http.MethodPut, addr+"/v1/workflows/bench-bomb", bombWorkflow(nodes), nil); err != nil {
		return fmt.Errorf("apply the bomb: %w", err)
	}
	if _, err := tenantRequest(ctx, hc, b, http.MethodPut, addr+"/v1/workflows/bench-one", bombOne, nil); err != nil {
		return err
	}
	list := make([]int, size)
	for i := range list {
		list[i] = i
	}
	input, _ := json.Marshal(map[string]any{"input": map[string]any{"a": list}})

	type sample struct {
		at  time.Time
		lat time.Duration
	}
	var samples []sample
	failed := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			var out struct {
				Status string `json:"status"`
			}
			_, err := tenantRequest(ctx, hc, b, http.MethodPost, addr+"/v1/workflows/bench-one/executions?wait=30s", fmt.Sprintf(`{"input":{"n":%d}}`, i), &out)
			if err != nil || out.Status != "succeeded" {
				failed++
				continue
			}
			samples = append(samples, sample{t0, time.Since(t0)})
		}
	}()

	time.Sleep(time.Second)
	bombAt := time.Now()
	var started struct {
		ID string `json:"id"`
	}
	if _, err := tenantRequest(ctx, hc, a, http.MethodPost, addr+"/v1/workflows/bench-bomb/executions", string(input), &started); err != nil {
		close(stop)
		<-done
		return fmt.Errorf("start the bomb: %w", err)
	}
	var status string
	for {
		var e struct {
			Status string `json:"status"`
		}
		if _, err := tenantRequest(ctx, hc, a, http.MethodGet, addr+"/v1/executions/"+started.ID, "", &e); err != nil {
			close(stop)
			<-done
			return err
		}
		status = e.Status
		if status != "running" && status != "pending" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	bombTook := time.Since(bombAt)
	time.Sleep(time.Second)
	close(stop)
	<-done

	var before, during []time.Duration
	for _, s := range samples {
		switch {
		case s.at.Before(bombAt):
			before = append(before, s.lat)
		case s.at.Before(bombAt.Add(bombTook)):
			during = append(during, s.lat)
		}
	}
	fmt.Printf("workload      bomb: %s starts %d x builtin.set mapping %d x %d elements; %s starts 1-node executions back to back\n", a, nodes, size, size, b)
	fmt.Printf("bomb          %s in %s\n", status, bombTook.Round(time.Millisecond))
	for _, p := range []struct {
		name string
		lat  []time.Duration
	}{{"before", before}, {"during", during}} {
		if len(p.lat) == 0 {
			fmt.Printf("other tenant  %s: no execution\n", p.name)
			continue
		}
		sort.Slice(p.lat, func(i, j int) bool { return p.lat[i] < p.lat[j] })
		fmt.Printf("other tenant  %s: %d executions, p50 %s  p99 %s  max %s\n", p.name, len(p.lat),
			pct(p.lat, 0.50), pct(p.lat, 0.99), p.lat[len(p.lat)-1].Round(time.Microsecond))
	}
	fmt.Printf("failed        %d\n", failed)
	if status != "succeeded" {
		return fmt.Errorf("the bomb ended %s", status)
	}
	return nil
}
