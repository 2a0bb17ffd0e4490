// Command poison is a test workload (issue 10): run in a container, it
// tries to reach the node's unix socket, where it is and where a
// container might find it, and to ask for a power-off there. It prints
// one line per path and exits 0. It is built by tests into their
// images (testkit.BuildPoison); nothing ships it.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// paths are where the node's socket is (/run/allium.sock) and where a
// container could look for the node's files.
var paths = []string{"/run/allium.sock", "/proc/1/root/run/allium.sock", "/var/run/allium.sock", "/../../run/allium.sock"}

func main() {
	for _, p := range paths {
		fmt.Println(try(p))
	}
}

func try(path string) string {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return fmt.Sprintf("poison: socket %s: unreachable: %v", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "POST /v1/node/poweroff HTTP/1.1\r\nHost: node\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(io.LimitReader(c, 200))
	fmt.Fprintf(os.Stderr, "poison: socket %s answered: %q\n", path, b)
	return fmt.Sprintf("poison: socket %s: REACHED", path)
}
