package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// compose is the part of deploy/compose.yaml the test reads.
type compose struct {
	Services map[string]struct {
		Image       string                                `yaml:"image"`
		Build       *struct{ Context, Dockerfile string } `yaml:"build"`
		Environment map[string]string                     `yaml:"environment"`
		Volumes     []string                              `yaml:"volumes"`
		Ports       []string                              `yaml:"ports"`
	} `yaml:"services"`
	Secrets map[string]map[string]string `yaml:"secrets"`
	Volumes map[string]any               `yaml:"volumes"`
}

// deploy/compose.yaml parses, has the five services, mounts only files
// that exist (the rules and the dashboard among them), builds from the
// real Dockerfile and publishes nothing beyond loopback.
func TestCompose(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, name := range []string{"meterd", "postgres", "prometheus", "grafana", "stripe-mock"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	mounted := map[string]bool{}
	for name, svc := range c.Services {
		for _, v := range svc.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				if _, ok := c.Volumes[src]; !ok {
					t.Errorf("%s: named volume %q is not declared", name, src)
				}
				continue
			}
			if _, err := os.Stat(src); err != nil {
				t.Errorf("%s mounts %s: %v", name, src, err)
			}
			mounted[filepath.Clean(src)] = true
		}
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %q beyond loopback", name, p)
			}
		}
		if svc.Build != nil {
			if _, err := os.Stat(filepath.Join(svc.Build.Context, svc.Build.Dockerfile)); err != nil {
				t.Errorf("%s builds from %v: %v", name, svc.Build, err)
			}
		}
	}
	for _, want := range []string{"prometheus/prometheus.yml", "prometheus/alerts.yml", "grafana/meterd.json",
		"grafana/provisioning/datasources/prometheus.yaml", "grafana/provisioning/dashboards/meterd.yaml"} {
		if !mounted[want] {
			t.Errorf("%s is not mounted by any service", want)
		}
	}
	m := c.Services["meterd"]
	if m.Environment["METER_ADMIN_TOKEN"] != "" || m.Environment["METER_ADMIN_TOKEN_FILE"] == "" {
		t.Errorf("meterd should read its admin token from a secret file, not the environment: %v", m.Environment)
	}
	if !strings.Contains(m.Environment["STRIPE_API_BASE"], "stripe-mock") {
		t.Errorf("meterd does not bill against stripe-mock: %v", m.Environment)
	}
	var ds struct {
		Datasources []struct{ Type, URL string } `yaml:"datasources"`
	}
	mustYAMLLoose(t, "grafana/provisioning/datasources/prometheus.yaml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || !strings.Contains(ds.Datasources[0].URL, "prometheus:9090") {
		t.Errorf("Grafana data source: %+v", ds)
	}
}

// The systemd unit runs meterd serve hardened, with the token as a
// credential file.
func TestSystemdUnit(t *testing.T) {
	raw, err := os.ReadFile("systemd/meterd.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, want := range []string{"ExecStart=/usr/local/bin/meterd serve", "DynamicUser=yes", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "StateDirectory=meterd", "METER_ADMIN_TOKEN_FILE=%d/admin-token",
		"LoadCredential=admin-token:", "CapabilityBoundingSet=\n", "TimeoutStopSec="} {
		if !strings.Contains(unit, want) {
			t.Errorf("meterd.service lacks %q", want)
		}
	}
}

func mustYAMLLoose(tb testing.TB, path string, v any) {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
}
