package cluster_test

import (
	"context"
	"testing"

	"github.com/meterd/meterd/cluster"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestCluster_Metrics: the cluster's collectors pass promlint and carry the
// meterd_cluster_ prefix. No database is needed: Open does not connect.
func TestCluster_Metrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := cluster.Open(cluster.Config{DatabaseURL: "postgres://u@127.0.0.1:1/db", NodeID: "n1",
		Local: nopLocal{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	want := map[string]bool{"meterd_cluster_lease_round_trips_total": false, "meterd_cluster_lease_grants_total": false,
		"meterd_cluster_lease_unleased_admissions_total": false, "meterd_cluster_changes_applied_total": false,
		"meterd_cluster_postgres_errors_total": false}
	for _, mf := range mfs {
		if _, ok := want[mf.GetName()]; ok {
			want[mf.GetName()] = true
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("metric %s not registered", name)
		}
	}
}

func TestOpen_Config(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  cluster.Config
	}{
		{"NoURL", cluster.Config{NodeID: "n1", Local: nopLocal{}}},
		{"NoNode", cluster.Config{DatabaseURL: "postgres://u@127.0.0.1:1/db", Local: nopLocal{}}},
		{"NoLocal", cluster.Config{DatabaseURL: "postgres://u@127.0.0.1:1/db", NodeID: "n1"}},
		{"BadFailMode", cluster.Config{DatabaseURL: "postgres://u@127.0.0.1:1/db", NodeID: "n1", Local: nopLocal{}, Fail: "maybe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := cluster.Open(tc.cfg); err == nil {
				t.Fatal("Open accepted it")
			}
		})
	}
}
