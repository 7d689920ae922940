// A Go static binary under the sandbox: goroutines across threads, the
// network poller on loopback, the interfaces (netlink), a child process.
package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
)

func main() {
	out := map[string]any{}
	var wg sync.WaitGroup
	sums := make([]int, 8)
	for i := range sums {
		wg.Add(1)
		go func(n int) { defer wg.Done(); for j := 0; j < 100000; j++ { sums[n] += j % 7 } }(i)
	}
	wg.Wait()
	out["goroutines"] = len(sums)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		out["error"] = err.Error()
	} else {
		go func() { c, _ := ln.Accept(); c.Write([]byte("x")); c.Close() }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			buf := make([]byte, 1)
			c.Read(buf)
			out["loopback"] = string(buf)
			c.Close()
		}
		ln.Close()
	}
	ifs, err := net.Interfaces()
	names := []string{}
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	sort.Strings(names)
	out["ifaces"] = names
	if err != nil {
		out["ifaces_error"] = err.Error()
	}
	child, err := exec.Command("/bin/sh", "-c", "echo child").Output()
	out["child"] = strings.TrimSpace(string(child))
	if err != nil {
		out["child_error"] = err.Error()
	}
	b, _ := json.Marshal(out)
	f := os.NewFile(3, "control")
	f.Write(append(b, '\n'))
}
