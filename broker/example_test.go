package broker_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/ferry-io/ferry/broker"
)

// An application embeds the broker: WebSocket clients connect to /ws, and
// the application itself publishes and subscribes in-process.
func Example() {
	b, err := broker.New(broker.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.Handle("/ws", b) // serve mux with an http.Server as usual

	got := make(chan string)
	sub, err := b.Subscribe("telemetry/+/temp", func(m *broker.Message) error {
		var v struct {
			Celsius float64 `json:"celsius"`
		}
		if err := m.Decode(&v); err != nil {
			return err
		}
		got <- fmt.Sprintf("%s: %.1f", m.Topic, v.Celsius)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Unsubscribe()

	err = b.Publish(context.Background(), broker.Message{
		Topic: "telemetry/dev-1/temp",
		Data:  []byte(`{"celsius": 21.5}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got)
	// Output: telemetry/dev-1/temp: 21.5
}
