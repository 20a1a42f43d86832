// A do-nothing HTTP server in Go answering /_ping with dockerd's headers on a unix socket: the floor for the
// "/_ping on a kept-alive connection" figure on Go's side (bench/containers.js builds and runs it when go exists).
package main

import (
	"net"
	"net/http"
	"os"
)

func main() {
	os.Remove(os.Args[1])
	l, err := net.Listen("unix", os.Args[1])
	if err != nil {
		panic(err)
	}
	os.Stdout.WriteString("ready\n")
	panic(http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Api-Version", "1.50")
		h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
		h.Set("Docker-Experimental", "false")
		h.Set("Ostype", "linux")
		h.Set("Pragma", "no-cache")
		h.Set("Server", "Docker/20.10.24+dfsg1 (linux)")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("OK"))
	})))
}
