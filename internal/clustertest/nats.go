// Package clustertest holds the tests that run real NATS servers in
// process, and the one helper that starts them. It is a module of its own
// (github.com/ferry-io/ferry/internal/clustertest) so that nats-server is
// a requirement of this module and of the bench module only, never of the
// ferry module that applications import.
//
//	natscluster/   package natscluster against NATS servers
//	cmdferry/      ferry serve processes joined through NATS
package clustertest

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/nats-io/nats-server/v2/server"
)

// NATSOptions configure a test NATS server. The zero value is a single
// server on a free port of 127.0.0.1.
type NATSOptions struct {
	// Name is the server's name. Default "nats".
	Name string
	// Port is the client port. Default: a free one. A server restarted on
	// the port of one that was shut down brings its clients back.
	Port int
	// Routes are the cluster addresses of servers to join.
	Routes []*url.URL
	// Cluster opens a route listener on a free port of 127.0.0.1 so that
	// other servers can join this one; set when Routes is set.
	Cluster bool
	// Users, when set, are the only accounts clients may connect with,
	// each with its permissions.
	Users []*server.User
}

// StartNATS runs a NATS server on 127.0.0.1 until the end of the test.
func StartNATS(t testing.TB, o NATSOptions) *server.Server {
	t.Helper()
	so := &server.Options{ServerName: o.Name, Host: "127.0.0.1", Port: o.Port, NoLog: true, NoSigs: true, Users: o.Users}
	if so.ServerName == "" {
		so.ServerName = "nats"
	}
	if so.Port == 0 {
		so.Port = server.RANDOM_PORT
	}
	if o.Cluster || len(o.Routes) > 0 {
		so.Cluster = server.ClusterOpts{Name: "ferry-test", Host: "127.0.0.1", Port: server.RANDOM_PORT}
		so.Routes = o.Routes
	}
	s, err := server.NewServer(so)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// StartNATSCluster runs n NATS servers routed to each other, and returns
// once every one has its routes to the others.
func StartNATSCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	first := StartNATS(t, NATSOptions{Name: "n0", Cluster: true})
	route, err := url.Parse("nats://" + first.ClusterAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	servers := []*server.Server{first}
	for i := 1; i < n; i++ {
		servers = append(servers, StartNATS(t, NATSOptions{Name: "n" + strconv.Itoa(i), Routes: []*url.URL{route}}))
	}
	testutil.Eventually(t, 20*time.Second, 10*time.Millisecond, "the NATS cluster to form", func() bool {
		for _, s := range servers {
			if s.NumRoutes() < n-1 {
				return false
			}
		}
		return true
	})
	return servers
}
