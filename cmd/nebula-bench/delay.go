package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// runDelay is the delay workload. It starts count executions of a workflow
// whose only node is a builtin.delay of d, from clients concurrent clients
// and without waiting (each start answers 201 at once), then polls the
// running executions until none is left and checks that every execution it
// started succeeded. The start rate and the time from the expected end
// (last start + d) to the actual end show what parked durable timers cost.
func runDelay(addrs []string, clients, count int, d time.Duration) error {
	const id = "bench-delay"
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: time.Minute}
	ctx := context.Background()
	def := fmt.Sprintf(`{"id": %q, "nodes": [{"id": "wait", "action": "builtin.delay", "params": {"duration": %q}}]}`, id, d.String())
	if err := do(ctx, hc, http.MethodPut, addrs[0]+"/v1/workflows/"+id, def, http.StatusOK, nil); err != nil {
		return fmt.Errorf("apply workflow: %w", err)
	}

	// Start phase: record every execution's id to check its end later.
	var next, failed atomic.Int64
	var firstErr atomic.Value
	ids := make([][]string, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		u := fmt.Sprintf("%s/v1/workflows/%s/executions", addrs[c%len(addrs)], id)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(count) {
				var out struct {
					ID string `json:"id"`
				}
				if err := do(ctx, hc, http.MethodPost, u, `{"input": {}}`, http.StatusCreated, &out); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ids[c] = append(ids[c], out.ID)
			}
		}()
	}
	wg.Wait()
	lastStart := time.Now()
	startElapsed := lastStart.Sub(start)
	started := make(map[string]bool, count)
	for _, l := range ids {
		for _, id := range l {
			started[id] = true
		}
	}
	fmt.Printf("workload      %d x builtin.delay %s started without waiting, %d clients over %d node(s)\n", count, d, clients, len(addrs))
	fmt.Printf("started       %d in %s: %.0f starts/s\n", len(started), startElapsed.Round(time.Millisecond), float64(len(started))/startElapsed.Seconds())
	fmt.Printf("failed        %d\n", failed.Load())
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("%d starts failed; first: %w", failed.Load(), err)
	}

	// Wait phase: poll until no execution of the workflow is pending or
	// running. Polling is itself a cost, so it is kept to twice a second.
	for {
		left := 0
		for _, status := range []string{"pending", "running"} {
			n, err := countExecutions(ctx, hc, addrs[0], id, status, nil)
			if err != nil {
				return err
			}
			left += n
		}
		if left == 0 {
			break
		}
		if time.Since(start) > d+10*time.Minute {
			return fmt.Errorf("%d executions still unfinished %s after the first start", left, time.Since(start).Round(time.Second))
		}
		time.Sleep(500 * time.Millisecond)
	}
	done := time.Now()
	fmt.Printf("all finished  %s after the first start, %s after the last start + %s (poll every 500ms)\n",
		done.Sub(start).Round(time.Millisecond), done.Sub(lastStart.Add(d)).Round(time.Millisecond), d)

	// Check the ends: every execution started here must have succeeded.
	succeeded, err := countExecutions(ctx, hc, addrs[0], id, "succeeded", started)
	if err != nil {
		return err
	}
	fmt.Printf("succeeded     %d of %d\n", succeeded, len(started))
	if succeeded != len(started) {
		return fmt.Errorf("%d of %d delayed executions did not succeed", len(started)-succeeded, len(started))
	}
	return nil
}

// countExecutions counts the executions of workflow wf with the given
// status, following next_cursor through pages of 1000; when only is not
// nil, only executions whose id it holds are counted.
func countExecutions(ctx context.Context, hc *http.Client, addr, wf, status string, only map[string]bool) (int, error) {
	n, cursor := 0, ""
	for {
		q := url.Values{"workflow": {wf}, "status": {status}, "limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := do(ctx, hc, http.MethodGet, addr+"/v1/executions?"+q.Encode(), "", http.StatusOK, &page); err != nil {
			return 0, fmt.Errorf("list %s executions: %w", status, err)
		}
		for _, e := range page.Items {
			if only == nil || only[e.ID] {
				n++
			}
		}
		if page.NextCursor == "" || len(page.Items) == 0 {
			return n, nil
		}
		cursor = page.NextCursor
	}
}
