package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// printRSS prints the server's resident set size (VmRSS) from
// /proc/<pid>/status. With pid 0 it looks for the server itself: a process
// whose command line names nebula and mentions addr's port.
func printRSS(pid int, addr string) {
	if pid == 0 {
		pid = findServer(addr)
	}
	if pid == 0 {
		fmt.Println("rss           RSS unknown (give -pid)")
		return
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		fmt.Printf("rss           RSS unknown (%v)\n", err)
		return
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(rest) // "54352 kB"
			if kb, err := strconv.Atoi(fields[0]); err == nil && len(fields) == 2 {
				fmt.Printf("rss           %.1f MiB (pid %d)\n", float64(kb)/1024, pid)
				return
			}
		}
	}
	fmt.Printf("rss           RSS unknown (no VmRSS for pid %d)\n", pid)
}

// findServer returns the id of a process whose program is named nebula and
// one of whose arguments contains addr's port, or 0 when there is none (or
// more than one, which would make the figure a guess).
func findServer(addr string) int {
	u, err := url.Parse(addr)
	if err != nil || u.Port() == "" {
		return 0
	}
	port := ":" + u.Port()
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	found := 0
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		args := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
		if filepath.Base(string(args[0])) != "nebula" {
			continue
		}
		for _, a := range args[1:] {
			if bytes.Contains(a, []byte(port)) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				if found != 0 && found != pid {
					return 0
				}
				found = pid
				break
			}
		}
	}
	return found
}
