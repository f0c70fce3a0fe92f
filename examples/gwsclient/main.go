// Command gwsclient talks to a ferry broker using nothing but the gws
// WebSocket library and the protocol document: it subscribes, publishes and
// prints what it receives, in JSON or msgpack.
//
//	go run ./examples/gwsclient -url ws://localhost:7420/ws -codec msgpack
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/lxzan/gws"
	"github.com/vmihailenco/msgpack/v5"
)

type handler struct {
	gws.BuiltinEventHandler
	got chan map[string]any
}

func (h *handler) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	var f map[string]any
	var err error
	if m.Opcode == gws.OpcodeBinary {
		err = msgpack.Unmarshal(m.Bytes(), &f)
	} else {
		err = json.Unmarshal(m.Bytes(), &f)
	}
	if err != nil {
		log.Printf("undecodable frame: %v", err)
		return
	}
	h.got <- f
}

func main() {
	url := flag.String("url", "ws://localhost:7420/ws", "broker URL")
	codec := flag.String("codec", "json", "json or msgpack")
	flag.Parse()

	h := &handler{got: make(chan map[string]any, 16)}
	conn, _, err := gws.NewClient(h, &gws.ClientOption{
		Addr:          *url,
		RequestHeader: http.Header{"Sec-WebSocket-Protocol": {"ferry.v1." + *codec}},
	})
	if err != nil {
		log.Fatal(err)
	}
	go conn.ReadLoop()

	send := func(f map[string]any) {
		var err error
		if *codec == "msgpack" {
			b, _ := msgpack.Marshal(f)
			err = conn.WriteMessage(gws.OpcodeBinary, b)
		} else {
			b, _ := json.Marshal(f)
			err = conn.WriteMessage(gws.OpcodeText, b)
		}
		if err != nil {
			log.Fatal(err)
		}
	}
	send(map[string]any{"op": "sub", "topic": "demo/#", "id": 1})
	send(map[string]any{"op": "pub", "topic": "demo/hello", "data": map[string]any{"from": "gws", "n": 1}, "id": 2})
	timeout := time.After(5 * time.Second)
	for seen := 0; seen < 3; seen++ { // ack (sub), msg, ack (pub)
		select {
		case f := <-h.got:
			fmt.Printf("%v\n", f)
		case <-timeout:
			log.Fatal("no reply within 5s")
		}
	}
	_ = conn.WriteClose(1000, nil)
}
