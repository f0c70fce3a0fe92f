// Command natsd runs an embedded nats-server with its WebSocket listener on
// (plain ws://, no TLS) so that the ferry bench tool can measure NATS in a
// process of its own. With -port it also listens for plain NATS clients on
// a known port (the cluster scenario joins ferry nodes through it); with
// -ws-port 0 it has no WebSocket listener.
//
//	go run ./bench/natsd -ws-port 8222
//	go run ./bench/natsd -port 4222 -ws-port 0
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address of both listeners")
	wsPort := flag.Int("ws-port", 8222, "WebSocket port (0: no WebSocket listener)")
	port := flag.Int("port", -1, "plain NATS client port (-1: a random one)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	s, err := server.NewServer(&server.Options{
		Host:      *host,
		Port:      *port,
		NoLog:     true,
		NoSigs:    true,
		Websocket: server.WebsocketOpts{Host: *host, Port: *wsPort, NoTLS: true},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "natsd: not ready")
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "natsd ready client=%s ws=%d\n", s.ClientURL(), *wsPort)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	s.Shutdown()
}
