// Command natsd runs an embedded nats-server with its WebSocket listener on
// (plain ws://, no TLS) so that the ferry bench tool can measure NATS in a
// process of its own.
//
//	go run ./bench/natsd -ws-port 8222
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address of both listeners")
	wsPort := flag.Int("ws-port", 8222, "WebSocket port")
	flag.Parse()
	s, err := server.NewServer(&server.Options{
		Host:      *host,
		Port:      -1,
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
	fmt.Fprintf(os.Stderr, "natsd ready url=ws://%s:%d\n", *host, *wsPort)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	s.Shutdown()
}
