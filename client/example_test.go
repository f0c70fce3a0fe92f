package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// runBroker starts a broker for the examples and returns its URL and a
// function that stops it.
func runBroker() (string, func()) {
	b, err := broker.New(broker.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "ws://" + ln.Addr().String() + "/ws", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = b.Shutdown(ctx)
	}
}

func Example() {
	url, stop := runBroker()
	defer stop()
	ctx := context.Background()

	c, err := client.Connect(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	got := make(chan string)
	_, err = c.Subscribe(ctx, "telemetry/+/temp", func(m *client.Message) error {
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
	// Publish returns once the broker has routed the message
	if err := c.Publish(ctx, "telemetry/dev-1/temp", map[string]float64{"celsius": 21.5}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got)
	// Output: telemetry/dev-1/temp: 21.5
}

// An acknowledged subscription gets every message at least once: a
// message whose handler returns an error comes back after the broker's ack
// wait, marked Redelivered.
func ExampleAckMode() {
	url, stop := runBroker()
	defer stop()
	ctx := context.Background()
	c, err := client.Connect(ctx, url, client.WithSession("worker-1"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	done := make(chan string)
	_, err = c.Subscribe(ctx, "jobs/#", func(m *client.Message) error {
		done <- fmt.Sprintf("job %s, redelivered: %v", m.Data, m.Redelivered)
		return nil // acknowledged
	}, client.AckMode(8), client.Group("workers"))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Publish(ctx, "jobs/resize", "img-42"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-done)
	// Output: job "img-42", redelivered: false
}

// Errors the broker reports carry its protocol code.
func ExampleError() {
	url, stop := runBroker()
	defer stop()
	ctx := context.Background()
	c, err := client.Connect(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	err = c.Publish(ctx, "$SYS/uptime", 1)
	var perr *client.Error
	if errors.As(err, &perr) {
		fmt.Println(perr.Code)
	}
	// Output: forbidden
}

// Telemetry that need not be acknowledged: PublishNoAck returns as soon as
// the message is buffered; the buffer is bounded, and FailFast turns a
// full buffer into ErrBufferFull instead of a wait.
func ExampleClient_PublishNoAck() {
	url, stop := runBroker()
	defer stop()
	ctx := context.Background()
	c, err := client.Connect(ctx, url, client.WithFailFast(), client.WithPublishBuffer(1000, 1<<20))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		if err := c.PublishNoAck(ctx, "telemetry/dev-1/temp", 20+i); errors.Is(err, client.ErrBufferFull) {
			fmt.Println("buffer full, reading dropped")
		}
	}
	fmt.Println("sent")
	// Output: sent
}
