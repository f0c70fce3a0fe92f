package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

func TestVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "ferry ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "ferry serve") {
		t.Fatalf("no args: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"launch"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "launch"`) {
		t.Fatalf("unknown command: %d %q", code, errb.String())
	}
}

func TestServeConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--slow-consumer", "explode"}, "--slow-consumer"},
		{[]string{"--path", "ws"}, "--path"},
		{[]string{"--max-frame", "3"}, "MaxFrameBytes"},
		{[]string{"--queue-bytes", "10"}, "QueueBytes"},
		{[]string{"--ping-interval", "10s", "--idle-timeout", "5s"}, "IdleTimeout"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--max-inflight", "-1"}, "MaxInflight"},
		{[]string{"--ack-wait", "-1s"}, "AckWait"},
		{[]string{"--bogus"}, "bogus"},
		{[]string{"--listen", "0.0.0.0:0"}, "--allow-anonymous"},
		{[]string{"--listen", ":0"}, "--allow-anonymous"},
		{[]string{"--listen", "example.com:0"}, "--allow-anonymous"},
		{[]string{"--jwt-secret-file", "/nonexistent/secret"}, "--jwt-secret-file"},
		{[]string{"--jwt-public-key", "/nonexistent/key.pem"}, "--jwt-public-key"},
		{[]string{"--jwt-audience", "ferry"}, "--jwt-audience and --jwt-issuer need"},
		{[]string{"--allowed-origins", "ftp//nope"}, "AllowedOrigins"},
		{[]string{"--max-sessions", "-1"}, "MaxSessions"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"serve", "--listen", "127.0.0.1:0"}, tc.args...), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("serve %v: exit %d, stderr %q; want exit 2 naming %s", tc.args, code, errb.String(), tc.want)
		}
	}
}

// ferryProcess is `ferry serve` running as a separate process.
type ferryProcess struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer // read it under logMu while the process runs
	done chan error

	logMu   sync.Mutex
	logLine chan struct{} // closed (and replaced) when a line is logged
}

// waitLog waits until the process has logged n lines holding s.
func (p *ferryProcess) waitLog(t *testing.T, s string, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		p.logMu.Lock()
		got, more := strings.Count(p.logs.String(), s), p.logLine
		p.logMu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-more:
		case <-timeout:
			p.logMu.Lock()
			defer p.logMu.Unlock()
			t.Fatalf("ferry did not log %q %d times:\n%s", s, n, p.logs)
		}
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// ferryBinary builds the command once per test run.
func ferryBinary(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ferry-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ferry")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func startFerry(t *testing.T, args ...string) *ferryProcess {
	t.Helper()
	cmd := exec.Command(ferryBinary(t), append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &ferryProcess{cmd: cmd, logs: &bytes.Buffer{}, done: make(chan error, 1), logLine: make(chan struct{})}
	urlRe := regexp.MustCompile(`url=(wss?://\S+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logMu.Lock()
			p.logs.WriteString(line + "\n")
			close(p.logLine)
			p.logLine = make(chan struct{})
			p.logMu.Unlock()
			if m := urlRe.FindStringSubmatch(line); m != nil {
				found <- m[1]
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.url = <-found:
	case err := <-p.done:
		t.Fatalf("ferry exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("ferry did not report its address")
	}
	return p
}

type closeRecorder struct {
	gws.BuiltinEventHandler
	closed chan *gws.CloseError
}

func (c *closeRecorder) OnClose(_ *gws.Conn, err error) {
	var ce *gws.CloseError
	errors.As(err, &ce)
	c.closed <- ce
}

// pythonWithWebsockets finds a Python with the websockets and msgpack
// packages. CI installs them; elsewhere the test is skipped without them.
func pythonWithWebsockets(t *testing.T) string {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import websockets, msgpack").Run() == nil {
			return py
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI must provide python3 with websockets and msgpack (see .ci/run)")
	}
	t.Skip("no python3 with websockets and msgpack")
	return ""
}

// TestServeProcess runs the real binary, drives it with the Python example
// client in both codecs, and stops it with SIGTERM.
func TestServeProcess(t *testing.T) {
	p := startFerry(t)
	py := pythonWithWebsockets(t)
	script := filepath.Join("..", "..", "examples", "python", "pubsub.py")
	for _, codec := range []string{"json", "msgpack"} {
		out, err := exec.Command(py, script, "--codec", codec, p.url).CombinedOutput()
		if err != nil {
			t.Fatalf("python %s: %v\n%s", codec, err, out)
		}
		s := string(out)
		for _, want := range []string{"negotiated ferry.v1." + codec, "'op': 'ack', 'id': 1", "'op': 'msg'", "'celsius': 21.5", "'op': 'ack', 'id': 2", "'code': 'bad_topic'"} {
			if !strings.Contains(s, want) {
				t.Fatalf("python %s output lacks %q:\n%s", codec, want, s)
			}
		}
	}

	health, err := http.Get("http" + strings.TrimSuffix(strings.TrimPrefix(p.url, "ws"), "/ws") + "/healthz")
	if err != nil || health.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", health, err)
	}
	health.Body.Close()
	pageResp, err := http.Get("http" + strings.TrimSuffix(strings.TrimPrefix(p.url, "ws"), "/ws") + "/")
	if err != nil || pageResp.StatusCode != 200 {
		t.Fatalf("demo page: %v %v", pageResp, err)
	}
	body, _ := io.ReadAll(pageResp.Body)
	pageResp.Body.Close()
	if !strings.Contains(string(body), `location.host + "/ws"`) {
		t.Fatalf("demo page does not point at /ws:\n%s", body)
	}

	rec := &closeRecorder{closed: make(chan *gws.CloseError, 1)}
	conn, _, err := gws.NewClient(rec, &gws.ClientOption{Addr: p.url})
	if err != nil {
		t.Fatal(err)
	}
	go conn.ReadLoop()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case ce := <-rec.closed:
		if ce == nil || ce.Code != 1001 {
			t.Fatalf("client closed with %v, want 1001", ce)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("client not closed after SIGTERM")
	}
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("ferry exited with %v\n%s", err, p.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("ferry did not exit after SIGTERM")
	}
}

func TestHandshakeTimeout(t *testing.T) {
	p := startFerry(t, "--handshake-timeout", "300ms")
	host := strings.TrimSuffix(strings.TrimPrefix(p.url, "ws://"), "/ws")
	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// send half a request and nothing more: the server must hang up
	if _, err := nc.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	for {
		_, err := nc.Read(buf)
		if err == nil {
			continue // net/http may answer 408 before closing
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("connection with an unfinished request still open after 10s")
		}
		return // closed by the server
	}
}
