package eventbus_test

import (
	"testing"

	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// TestDeployClusterEnforcesTheRoles: the cluster of docker-compose.yml, with
// every stream at replicas 3, refuses each role what it must not do and
// allows what it must, as the embedded server of `make run` does.
func TestDeployClusterEnforcesTheRoles(t *testing.T) {
	url, creds := bustest.StartDeployCluster(t)
	admin := bustest.ClusterAdmin(t, url, creds)
	fill(t, admin)
	checkMatrix(t, target{url: url, admin: admin, seed: creds.SeedFile})
}
