// Command ferry runs the ferry pub/sub broker.
//
//	ferry serve [flags]   run the broker
//	ferry version         print the version
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/perm"
	"github.com/ferry-io/ferry/natscluster"
	"github.com/nats-io/nats.go"
)

//go:embed page.html
var page string

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "bench":
		return bench(args[1:], stdout, stderr)
	case "token":
		return token(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "ferry", versionString())
		return 0
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "ferry: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `ferry is an embeddable pub/sub message broker speaking WebSocket.

Usage:
  ferry serve [flags]   run the broker (ferry serve -h lists the flags)
  ferry token [flags]   mint a signed token (ferry token -h lists the flags)
  ferry bench [flags]   run the benchmark suite against NATS (needs the source tree and Go)
  ferry version         print the version
`)
}

// bench runs the load tool of the source tree (go run ./bench): it builds
// the broker under test from source, so it needs the tree and Go.
func bench(args []string, stdout, stderr io.Writer) int {
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(stderr, "ferry bench:", err)
		return 1
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "bench", "load")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			fmt.Fprintln(stderr, "ferry bench: run it inside the ferry source tree (it runs `go run ./bench`)")
			return 2
		}
		dir = parent
	}
	cmd := exec.Command("go", append([]string{"run", "./bench"}, args...)...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, stdout, stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(stderr, "ferry bench:", err)
		return 1
	}
	return 0
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

type serveConfig struct {
	nats            string
	natsPrefix      string
	natsCreds       string
	natsUser        string
	natsPassword    string
	natsTLSCA       string
	listen          string
	path            string
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	policy          string
	origins         string
	proxies         string
	cpuprofile      string
	allowAnonymous  bool
	jwtSecretFile   string
	jwtPublicKey    string
	jwtAudience     string
	jwtIssuer       string
	aclFile         string
	tokensFile      string
	jwks            string
	tls             tlsFlags
	opts            broker.Options
}

func parseServe(args []string, stderr io.Writer) (*serveConfig, error) {
	cfg := &serveConfig{}
	fs := flag.NewFlagSet("ferry serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.listen, "listen", "localhost:7420", "address to listen on (host:port)")
	fs.StringVar(&cfg.path, "path", "/ws", "HTTP path of the WebSocket endpoint")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	fs.IntVar(&cfg.opts.MaxFrameBytes, "max-frame", broker.DefaultMaxFrameBytes, "largest frame accepted from a client, in bytes")
	fs.IntVar(&cfg.opts.MaxTopicBytes, "max-topic", broker.DefaultMaxTopicBytes, "longest topic or filter, in bytes")
	fs.IntVar(&cfg.opts.MaxSubscriptions, "max-subs", broker.DefaultMaxSubscriptions, "most subscriptions per connection (negative: no limit)")
	fs.IntVar(&cfg.opts.QueueBytes, "queue-bytes", broker.DefaultQueueBytes, "bound of each connection's outbound queue, in bytes")
	fs.StringVar(&cfg.policy, "slow-consumer", string(broker.Disconnect), "what to do when a queue is full: disconnect or drop")
	fs.DurationVar(&cfg.opts.MaxStall, "max-stall", broker.DefaultMaxStall, "longest a publish waits for room in full queues (negative: never)")
	fs.DurationVar(&cfg.opts.DrainTimeout, "drain-timeout", broker.DefaultDrainTimeout, "longest a full queue's subscriber may make no progress before it is a slow consumer; while it reads, publishers wait for it (negative: no waiting beyond --max-stall)")
	fs.DurationVar(&cfg.opts.HandshakeTimeout, "handshake-timeout", broker.DefaultHandshakeTimeout, "time allowed to read the upgrade request and answer it")
	fs.DurationVar(&cfg.opts.PingInterval, "ping-interval", broker.DefaultPingInterval, "how often quiet connections are pinged (negative: never)")
	fs.DurationVar(&cfg.opts.IdleTimeout, "idle-timeout", broker.DefaultIdleTimeout, "close connections silent for this long")
	fs.DurationVar(&cfg.opts.WriteTimeout, "write-timeout", broker.DefaultWriteTimeout, "longest a single socket write may block")
	fs.DurationVar(&cfg.opts.AckWait, "ack-wait", broker.DefaultAckWait, "redeliver an unacknowledged message after this long")
	fs.DurationVar(&cfg.opts.AckStall, "ack-stall", broker.DefaultAckStall, "longest a publish waits for room in full acknowledged queues (negative: never)")
	fs.IntVar(&cfg.opts.MaxInflight, "max-inflight", broker.DefaultMaxInflight, "largest inflight window a subscription may ask for")
	fs.IntVar(&cfg.opts.AckQueue, "ack-queue", broker.DefaultAckQueue, "messages an acknowledged subscription may queue beyond its window")
	fs.DurationVar(&cfg.opts.SessionTTL, "session-ttl", broker.DefaultSessionTTL, "how long a disconnected session is kept for resume (negative: no sessions)")
	fs.IntVar(&cfg.opts.MaxSessions, "max-sessions", broker.DefaultMaxSessions, "most sessions with an id held at once")
	fs.IntVar(&cfg.opts.MaxRetained, "max-retained", broker.DefaultMaxRetained, "most retained messages (one per topic)")
	fs.IntVar(&cfg.opts.MaxRetainedBytes, "max-retained-bytes", broker.DefaultMaxRetainedBytes, "bound of all retained messages, in bytes")
	fs.StringVar(&cfg.origins, "allowed-origins", "", "browser origins that may connect: comma-separated origins and globs (https://*.example.com), * for all (default: pages from the broker's own host only)")
	fs.IntVar(&cfg.opts.MaxConnections, "max-connections", 0, "most connections at once, 503 beyond (0: no limit)")
	fs.Float64Var(&cfg.opts.ConnRate, "conn-rate", 0, "new connections per second per client IP, 429 beyond (0: no limit)")
	fs.IntVar(&cfg.opts.ConnBurst, "conn-burst", 0, "new connections a client IP may make at once under --conn-rate (default: the rate, at least 1)")
	fs.StringVar(&cfg.proxies, "trusted-proxies", "", "comma-separated IPs or CIDR blocks of proxies whose X-Forwarded-For names the client (for --conn-rate)")
	fs.Float64Var(&cfg.opts.PubRate, "pub-rate", 0, "publishes per second per connection, rate_limited beyond (0: no limit)")
	fs.IntVar(&cfg.opts.PubBurst, "pub-burst", 0, "publishes a connection may make at once under --pub-rate (default: the rate, at least 1)")
	fs.BoolVar(&cfg.allowAnonymous, "allow-anonymous", false, "allow a listener on a non-loopback address with no authentication")
	fs.StringVar(&cfg.jwtSecretFile, "jwt-secret-file", "", "file of HMAC secrets for HS256/384/512 tokens, one a line (two while rotating); or set FERRY_JWT_SECRET")
	fs.StringVar(&cfg.jwtPublicKey, "jwt-public-key", "", "PEM file of public keys for RS256/ES256/EdDSA tokens")
	fs.StringVar(&cfg.jwtAudience, "jwt-audience", "", "required aud of tokens")
	fs.StringVar(&cfg.jwtIssuer, "jwt-issuer", "", "required iss of tokens")
	fs.StringVar(&cfg.aclFile, "acl", "", `JSON file of permissions by identity, for tokens without a "ferry" claim: [{"identity": "dev-*", "pub": [...], "sub": [...]}]`)
	fs.StringVar(&cfg.tokensFile, "tokens", "", `JSON file of static tokens: [{"identity": "dev-17", "sha256": "<hex SHA-256 of the token>" or "token": "<the token>", "pub": [...], "sub": [...], "limits": {"pub_rate": 5}}]`)
	fs.StringVar(&cfg.jwks, "jwks", "", "JSON Web Key Set for RS/PS/ES/EdDSA tokens: an https URL (fetched again hourly and for an unknown kid) or a file (read again when it changes)")
	cfg.tls.register(fs)
	fs.StringVar(&cfg.nats, "nats", "", "join a cluster through NATS: comma-separated server URLs (nats://h1:4222,nats://h2:4222)")
	fs.StringVar(&cfg.natsPrefix, "nats-prefix", natscluster.DefaultPrefix, "first token of ferry's NATS subjects")
	fs.StringVar(&cfg.natsCreds, "nats-creds", "", "NATS credentials file")
	fs.StringVar(&cfg.natsUser, "nats-user", "", "NATS user name")
	fs.StringVar(&cfg.natsPassword, "nats-password", "", "NATS password (or set FERRY_NATS_PASSWORD)")
	fs.StringVar(&cfg.natsTLSCA, "nats-tls-ca", "", "CA certificate file for TLS to NATS")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile (pprof) of the whole run to this file, finished at shutdown")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !strings.HasPrefix(cfg.path, "/") {
		return nil, fmt.Errorf("--path %q: must start with /", cfg.path)
	}
	p, err := broker.ParsePolicy(cfg.policy)
	if err != nil {
		return nil, fmt.Errorf("--slow-consumer: %w", err)
	}
	cfg.opts.SlowConsumer = p
	for _, p := range strings.Split(cfg.proxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.opts.TrustedProxies = append(cfg.opts.TrustedProxies, p)
		}
	}
	for _, o := range strings.Split(cfg.origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.opts.AllowedOrigins = append(cfg.opts.AllowedOrigins, o)
		}
	}
	if cfg.opts.HandshakeTimeout <= 0 {
		return nil, fmt.Errorf("--handshake-timeout %v: must be positive", cfg.opts.HandshakeTimeout)
	}
	if err := cfg.authentication(); err != nil {
		return nil, err
	}
	if err := cfg.tls.setup(&cfg.opts); err != nil {
		return nil, err
	}
	if cfg.opts.Authenticate == nil && !cfg.allowAnonymous && !loopback(cfg.listen) {
		return nil, fmt.Errorf("--listen %s: no authentication is configured, so anyone who reaches this address could publish and subscribe; configure tokens (--jwt-secret-file, --jwt-public-key, --jwks, --tokens) or client certificates (--tls-client-ca), or pass --allow-anonymous", cfg.listen)
	}
	return cfg, nil
}

// authentication sets up the static tokens and the JWT verifier the flags
// (and FERRY_JWT_SECRET) ask for, if any.
func (cfg *serveConfig) authentication() error {
	var jc auth.JWTConfig
	if cfg.jwtSecretFile != "" {
		s, err := auth.LoadSecrets(cfg.jwtSecretFile)
		if err != nil {
			return fmt.Errorf("--jwt-secret-file: %w", err)
		}
		jc.Secrets = s
	} else if env := os.Getenv("FERRY_JWT_SECRET"); env != "" {
		s, err := auth.ParseSecrets(env, "FERRY_JWT_SECRET")
		if err != nil {
			return err
		}
		jc.Secrets = s
	}
	if cfg.jwtPublicKey != "" {
		k, err := auth.LoadPublicKeys(cfg.jwtPublicKey)
		if err != nil {
			return fmt.Errorf("--jwt-public-key: %w", err)
		}
		jc.PublicKeys = k
	}
	if cfg.aclFile != "" {
		b, err := os.ReadFile(cfg.aclFile)
		if err != nil {
			return fmt.Errorf("--acl: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg.opts.ACL); err != nil {
			return fmt.Errorf("--acl %s: %w", cfg.aclFile, err)
		}
		for i, e := range cfg.opts.ACL {
			if e.Identity == "" {
				return fmt.Errorf("--acl %s: entry %d has no identity", cfg.aclFile, i+1)
			}
			if _, err := perm.Compile(e.Permissions, perm.Identity{Subject: "x"}); err != nil {
				return fmt.Errorf("--acl %s: entry %d (%s): %w", cfg.aclFile, i+1, e.Identity, err)
			}
		}
	}
	tokens, err := cfg.staticTokens()
	if err != nil {
		return err
	}
	if len(jc.Secrets) == 0 && len(jc.PublicKeys) == 0 && cfg.jwks == "" {
		if cfg.aclFile != "" && tokens == nil && cfg.tls.clientCA == "" {
			return errors.New("--acl needs tokens to verify or client certificates: --tokens, --jwt-secret-file, FERRY_JWT_SECRET, --jwt-public-key, --jwks or --tls-client-ca")
		}
		if cfg.jwtAudience != "" || cfg.jwtIssuer != "" {
			return errors.New("--jwt-audience and --jwt-issuer need --jwt-secret-file, FERRY_JWT_SECRET, --jwt-public-key or --jwks")
		}
		cfg.authenticate(tokens, nil)
		return nil
	}
	jc.Audience, jc.Issuer = cfg.jwtAudience, cfg.jwtIssuer
	if jc.JWKS, err = cfg.loadJWKS(); err != nil {
		return err
	}
	j, err := auth.NewJWT(jc)
	if err != nil {
		if jc.JWKS != nil {
			jc.JWKS.Close()
		}
		return err
	}
	cfg.authenticate(tokens, j)
	return nil
}

// loopback reports whether a listen address is on the loopback interface
// only ("localhost", 127.0.0.0/8, ::1). An empty host (every interface)
// or any other name is not.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func serve(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseServe(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "ferry serve:", err)
		return 2
	}
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "ferry serve:", err)
		return 2
	}
	cfg.opts.Logger = log
	slog.SetDefault(log) // for what logs without a logger of its own (a JWKS's refreshes)
	if cfg.nats != "" {
		var nopts []nats.Option
		if cfg.natsCreds != "" {
			nopts = append(nopts, nats.UserCredentials(cfg.natsCreds))
		}
		if cfg.natsPassword == "" {
			cfg.natsPassword = os.Getenv("FERRY_NATS_PASSWORD")
		}
		if cfg.natsUser != "" {
			nopts = append(nopts, nats.UserInfo(cfg.natsUser, cfg.natsPassword))
		}
		if cfg.natsTLSCA != "" {
			nopts = append(nopts, nats.RootCAs(cfg.natsTLSCA))
		}
		cl, err := natscluster.New(natscluster.Options{URLs: strings.Split(cfg.nats, ","), Prefix: cfg.natsPrefix,
			NATSOptions: nopts, Logger: log})
		if err != nil {
			fmt.Fprintln(stderr, "ferry serve: --nats:", err)
			return 2
		}
		cfg.opts.Cluster = cl
	}
	b, err := broker.New(cfg.opts)
	if err != nil {
		fmt.Fprintln(stderr, "ferry serve:", err)
		return 2
	}
	mux := http.NewServeMux()
	mux.Handle(cfg.path, b)
	if cfg.path != "/" {
		// a page to try the broker from a browser, same origin as the broker
		demo := strings.ReplaceAll(page, "{{WS_PATH}}", cfg.path)
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, demo)
		})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		st := b.Stats()
		status := "ok"
		switch {
		case st.Cluster == nil:
		case !st.Cluster.Connected:
			status = "degraded: cluster unreachable, delivering locally"
		case st.Cluster.Missing > 0:
			status = fmt.Sprintf("degraded: %d filters without their cluster subscription get only this node's messages", st.Cluster.Missing)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "stats": st})
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.opts.HandshakeTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		fmt.Fprintln(stderr, "ferry serve:", err)
		return 1
	}
	ln, scheme, stopTLS := cfg.tls.listen(ln, srv, log)
	defer stopTLS()
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "ferry serve: --cpuprofile:", err)
			return 2
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "ferry serve: --cpuprofile:", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	log.Info("ferry listening", "version", versionString(), "url", scheme+"://"+ln.Addr().String()+cfg.path,
		"slow_consumer", cfg.opts.SlowConsumer)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		log.Error("ferry: server failed", "err", err)
		return 1
	case <-ctx.Done():
	}
	stop() // a second signal ends the process at once
	log.Info("ferry shutting down", "timeout", cfg.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(sctx) // stops accepting; hijacked connections are the broker's
	if err := b.Shutdown(sctx); err != nil {
		log.Warn("ferry: shutdown cut short", "err", err)
	}
	log.Info("ferry stopped")
	return 0
}
