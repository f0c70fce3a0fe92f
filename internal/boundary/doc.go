// Package boundary holds a test of what an application that embeds ferry
// inherits in its module graph: nats-server and the load tool's
// dependencies belong to the bench and clustertest modules, never to the
// ferry module.
package boundary
