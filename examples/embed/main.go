// Command embed shows ferry embedded in a Go application: the broker is
// mounted on the application's own mux next to its other handlers, and the
// application publishes and subscribes in-process.
//
//	go run ./examples/embed
//
// then connect a WebSocket client to ws://localhost:8080/ws.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/ferry-io/ferry/broker"
)

func main() {
	b, err := broker.New(broker.Options{}) // zero values mean the defaults
	if err != nil {
		log.Fatal(err)
	}

	// in-process subscriber: runs on its own goroutine, never on a publisher's
	_, err = b.Subscribe("telemetry/+/temp", func(m *broker.Message) error {
		var v struct {
			Celsius float64 `json:"celsius" msgpack:"celsius"`
		}
		if err := m.Decode(&v); err != nil {
			return err
		}
		fmt.Printf("%s: %.1f °C\n", m.Topic, v.Celsius)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/ws", b)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "the application's own pages live here; WebSocket clients use /ws")
	})
	srv := &http.Server{Addr: "localhost:8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != http.ErrServerClosed {
			log.Fatal(err)
		}
	}()

	// the application publishes too: a heartbeat every second
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
			_ = b.Shutdown(shutdown)
			return
		case now := <-tick.C:
			data := fmt.Sprintf(`{"time":%q}`, now.Format(time.RFC3339))
			if err := b.Publish(ctx, broker.Message{Topic: "app/heartbeat", Data: []byte(data)}); err != nil {
				log.Print(err)
			}
		}
	}
}
