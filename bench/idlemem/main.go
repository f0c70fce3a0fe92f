// Command idlemem measures where a broker's memory per idle connection
// goes: it runs the broker in this process, opens N connections (each with
// one subscription, msgpack) from a child process, and reports per
// connection the heap objects, goroutine stacks, free heap and RSS from
// runtime/metrics and /proc/self/status, plus a heap profile.
//
//	go run ./bench/idlemem -n 5000 -heapprofile idle.prof
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-io/ferry/bench/load"
	"github.com/ferry-io/ferry/broker"
)

func rss() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l[6:])
			v, _ := strconv.ParseInt(f[0], 10, 64)
			return v * 1024
		}
	}
	return 0
}

func snap() map[string]uint64 {
	names := []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/stacks:bytes", "/memory/classes/total:bytes", "/memory/classes/heap/free:bytes", "/memory/classes/heap/released:bytes", "/memory/classes/heap/unused:bytes", "/sched/goroutines:goroutines", "/gc/stack/starting-size:bytes"}
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	metrics.Read(s)
	m := map[string]uint64{}
	for _, x := range s {
		m[x.Name] = x.Value.Uint64()
	}
	return m
}

func main() {
	n := 5000
	heapProfile := ""
	if len(os.Args) > 2 && os.Args[1] == "client" {
		n, _ = strconv.Atoi(os.Args[3])
		load.RaiseFileLimit()
		url := os.Args[2]
		var conns []load.Conn
		for i := 0; i < n; i++ {
			c, err := load.Dial(load.Target{Kind: load.FerryMsgpack}, url, 8)
			if err != nil {
				panic(err)
			}
			if err := c.Subscribe(fmt.Sprintf("idle/%d", i), func(int64) {}); err != nil {
				panic(err)
			}
			conns = append(conns, c)
		}
		fmt.Println("ready")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		for _, c := range conns {
			c.Close()
		}
		return
	}
	flag.IntVar(&n, "n", n, "idle connections")
	flag.StringVar(&heapProfile, "heapprofile", "", "write a heap profile (after the connections are up) to this file")
	flag.Parse()
	load.RaiseFileLimit()
	b, err := broker.New(broker.Options{})
	if err != nil {
		panic(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	mux := http.NewServeMux()
	mux.Handle("/ws", b)
	go http.Serve(ln, mux)
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	m0, r0 := snap(), rss()
	cmd := exec.Command(os.Args[0], "client", "ws://"+ln.Addr().String()+"/ws", strconv.Itoa(n))
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	cmd.Start()
	bufio.NewReader(out).ReadString('\n')
	time.Sleep(time.Second)
	r1 := rss()
	runtime.GC()
	runtime.GC()
	m1 := snap()
	debug.FreeOSMemory()
	r2 := rss()
	for _, k := range []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/stacks:bytes", "/memory/classes/total:bytes", "/memory/classes/heap/free:bytes", "/memory/classes/heap/unused:bytes", "/memory/classes/heap/released:bytes"} {
		fmt.Printf("%-40s %8.2f KiB/conn\n", k, float64(int64(m1[k])-int64(m0[k]))/float64(n)/1024)
	}
	fmt.Printf("%d connections; goroutines %d, starting stack %d\n", n, m1["/sched/goroutines:goroutines"], m1["/gc/stack/starting-size:bytes"])
	fmt.Printf("RSS after 1s: %.2f KiB/conn; after GC+FreeOSMemory: %.2f KiB/conn\n", float64(r1-r0)/float64(n)/1024, float64(r2-r0)/float64(n)/1024)
	if heapProfile != "" {
		f, err := os.Create(heapProfile)
		if err != nil {
			panic(err)
		}
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	in.Write([]byte("\n"))
	cmd.Wait()
}
