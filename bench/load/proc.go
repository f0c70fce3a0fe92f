package load

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RaiseFileLimit raises RLIMIT_NOFILE to its hard limit for this process
// and, because it is set with syscall.Setrlimit, for the children it starts.
// It returns the soft limit in effect afterwards.
func RaiseFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	rl.Cur = rl.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	return rl.Cur
}

// ModuleRoot returns the directory of the ferry module (the repository's
// root), as the go command resolves it from the working directory: the
// bench module (which replaces ferry with ../) or the workspace.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ferry-io/ferry").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/ferry-io/ferry: %w (run it in bench/ or in the repository)", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("not inside the ferry repository")
	}
	return dir, nil
}

// Binaries are the broker programs under test.
type Binaries struct {
	Ferry string // ferry (cmd/ferry)
	NATSD string // bench/natsd
	// Mosquitto is the mosquitto program (not built: installed, see
	// FindMosquitto); empty skips the mosquitto target.
	Mosquitto string
}

// Build compiles cmd/ferry and bench/natsd into dir; root is the ferry
// module's directory (ModuleRoot). The builds run in the bench module,
// which requires both ferry and nats-server.
func Build(root, dir string) (Binaries, error) {
	b := Binaries{Ferry: filepath.Join(dir, "ferry"), NATSD: filepath.Join(dir, "natsd")}
	for _, x := range []struct{ out, pkg string }{
		{b.Ferry, "github.com/ferry-io/ferry/cmd/ferry"},
		{b.NATSD, "github.com/ferry-io/ferry/bench/natsd"},
	} {
		cmd := exec.Command("go", "build", "-o", x.out, x.pkg)
		cmd.Dir = filepath.Join(root, "bench")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", x.pkg, err, out)
		}
	}
	return b, nil
}

// Proc is a broker running as a child process.
type Proc struct {
	URL     string
	cmd     *exec.Cmd
	stderr  *lockedBuf
	done    chan struct{}
	cleanup func() // run by Stop once the child has ended
	// noSyscalls: the child's /proc/<pid>/io counts do not say how it uses
	// its sockets; Syscalls reports nothing.
	noSyscalls bool
}

// Pid returns the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuf is a bytes.Buffer safe for the child's writer and our reader.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartProc runs bin with args (in which "{port}" is replaced by a free
// port) and waits until the port accepts TCP connections.
func StartProc(bin string, args []string, urlFmt string) (*Proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ps := strconv.Itoa(port)
	a := make([]string, len(args))
	for i, s := range args {
		a[i] = strings.ReplaceAll(s, "{port}", ps)
	}
	return startProc(bin, a, port, fmt.Sprintf(urlFmt, port))
}

// startProc runs bin with args and waits until port accepts TCP
// connections; url is how clients reach it.
func startProc(bin string, args []string, port int, url string) (*Proc, error) {
	ps := strconv.Itoa(port)
	p := &Proc{URL: url, stderr: &lockedBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// a grandchild holding the output pipe (a wrapper script's broker)
	// must not keep Wait, and so Stop, from returning
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+ps, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited: %s", bin, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("%s: port %d not ready: %s", bin, port, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the child: SIGTERM, then SIGKILL after 3 s.
func (p *Proc) Stop() {
	defer func() {
		if p.cleanup != nil {
			p.cleanup()
			p.cleanup = nil
		}
	}()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Alive reports whether the child is still running.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Output returns what the child wrote so far (stderr and stdout).
func (p *Proc) Output() string { return p.stderr.String() }

// clkTck is the kernel's USER_HZ, 100 on Linux for every supported arch.
const clkTck = 100

// CPU returns the child's user+system CPU time from /proc/<pid>/stat.
func (p *Proc) CPU() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// after ")" : state(3) ... utime is field 14, stime 15 (1-based) → index 11, 12
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clkTck
}

// Syscalls returns the child's read and write system calls so far
// (syscr and syscw of /proc/<pid>/io; readv and writev count as one each).
func (p *Proc) Syscalls() (reads, writes int64) {
	if p.noSyscalls {
		return 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", p.Pid()))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// RSS returns the child's resident set size (VmRSS) in bytes.
func (p *Proc) RSS() int64 { return statusKB(p.Pid(), "VmRSS:") * 1024 }

// PeakRSS returns the child's peak resident set size (VmHWM) in bytes.
func (p *Proc) PeakRSS() int64 { return statusKB(p.Pid(), "VmHWM:") * 1024 }

func statusKB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line[len(key):])
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// waitCtx sleeps for d or until ctx is done.
func waitCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
