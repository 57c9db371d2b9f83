package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// standardMetrics are the series the examples may use that meterd does not
// define: Prometheus' own, node_exporter's, and the Go and process
// collectors meterd registers.
var standardMetrics = []string{"up", "node_filesystem_avail_bytes", "node_filesystem_size_bytes",
	"process_resident_memory_bytes", "process_cpu_seconds_total", "go_goroutines"}

// meterdMetrics collects every "meterd_..." name the repository's Go code
// declares, with the series a histogram adds, so the examples cannot name
// a metric that does not exist (or no longer does).
func meterdMetrics(tb testing.TB) map[string]bool {
	tb.Helper()
	names := map[string]bool{}
	lit := regexp.MustCompile(`"(meterd_[a-z0-9_]+)"`)
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				names[m[1]+suffix] = true
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range standardMetrics {
		names[name] = true
	}
	if !names["meterd_ledger_commit_errors_total"] || !names["meterd_meter_decisions_total"] {
		tb.Fatalf("found no metric declarations in the Go sources: %v", names)
	}
	return names
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promNumbers   = regexp.MustCompile(`\b[0-9][0-9a-zA-Z_.]*`)
	promIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promKeywords  = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
	grafanaVarRef = regexp.MustCompile(`\$\{?\w+\}?`)
)

// metricNames returns the metric names a PromQL expression selects: what
// is left once strings, label matchers, ranges, grouping clauses, numbers,
// functions and keywords are taken out.
func metricNames(expr string) []string {
	s := grafanaVarRef.ReplaceAllString(expr, "")
	for _, re := range []*regexp.Regexp{promStrings, promMatchers, promRanges, promGrouping, promNumbers} {
		s = re.ReplaceAllString(s, " ")
	}
	var out []string
	for _, id := range promIdent.FindAllString(s, -1) {
		if strings.HasSuffix(id, "(") || slices.Contains(promKeywords, id) {
			continue
		}
		out = append(out, id)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string]string{
		`up{job="meterd"} == 0`: "up",
		`histogram_quantile(0.99, sum by (instance, le) (rate(meterd_x_seconds_bucket{a="b"}[5m]))) > 0.25`: "meterd_x_seconds_bucket",
		`a > 0 and time() - b > 26 * 3600`: "a b",
		`sum(rate(x_sum{instance=~"$instance"}[$__rate_interval])) / sum(rate(x_count{instance=~"$instance"}[1h]))`: "x_sum x_count",
		`node_a{mountpoint="/data",fstype!~"tmpfs|overlay"} / on (instance) node_b < 1e3`:                           "node_a node_b",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// alertRules is the shape of a Prometheus rule file.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func mustYAML(tb testing.TB, path string, v any) {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
}

// docAnchors lists the heading anchors of a Markdown file, GitHub style.
func docAnchors(tb testing.TB, path string) map[string]bool {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		anchors[strings.ReplaceAll(drop.ReplaceAllString(title, ""), " ", "-")] = true
	}
	return anchors
}

var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

func TestAlertRules(t *testing.T) {
	known := meterdMetrics(t)
	anchors := docAnchors(t, "../docs/operations.md")
	var rules alertRules
	mustYAML(t, "prometheus/alerts.yml", &rules)
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			switch {
			case !regexp.MustCompile(`^Meterd[A-Z][A-Za-z]+$`).MatchString(name):
				t.Errorf("rule %q: alerts are named MeterdSomething (recording rules are not expected here)", name+r.Record)
			case seen[name]:
				t.Errorf("alert %s defined twice", name)
			}
			seen[name] = true
			if r.For != "" && !promDuration.MatchString(r.For) {
				t.Errorf("%s: for %q is not a duration", name, r.For)
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", name, sev)
			}
			for _, k := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[k]) == "" {
					t.Errorf("%s: no %s annotation", name, k)
				}
			}
			if doc, anchor, _ := strings.Cut(r.Annotations["runbook"], "#"); doc != "docs/operations.md" || !anchors[anchor] {
				t.Errorf("%s: runbook %q is not a heading of docs/operations.md", name, r.Annotations["runbook"])
			}
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("%s: expr %q selects no metric", name, r.Expr)
			}
			for _, m := range names {
				if !known[m] {
					t.Errorf("%s: expr names %s, which neither meterd nor a standard exporter defines", name, m)
				}
			}
		}
	}
	// The alerts the operations issue asks for.
	for _, want := range []string{"MeterdLedgerCommitErrors", "MeterdExportLagging", "MeterdBillingRunFailed",
		"MeterdBillingStale", "MeterdDiskNearlyFull", "MeterdDiskBelowFloor", "MeterdDown"} {
		if !seen[want] {
			t.Errorf("no %s alert", want)
		}
	}
}

// scrapeConfig is one scrape job of prometheus.yml.
type scrapeConfig struct {
	JobName       string `yaml:"job_name"`
	MetricsPath   string `yaml:"metrics_path"`
	StaticConfigs []struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels"`
	} `yaml:"static_configs"`
}

func TestPrometheusConfig(t *testing.T) {
	var cfg struct {
		Global        map[string]string `yaml:"global"`
		RuleFiles     []string          `yaml:"rule_files"`
		ScrapeConfigs []scrapeConfig    `yaml:"scrape_configs"`
	}
	mustYAML(t, "prometheus/prometheus.yml", &cfg)
	for _, f := range cfg.RuleFiles {
		if _, err := os.Stat(filepath.Join("prometheus", f)); err != nil {
			t.Errorf("rule file %s: %v", f, err)
		}
	}
	if !slices.Contains(cfg.RuleFiles, "alerts.yml") {
		t.Errorf("rule_files %v do not load alerts.yml", cfg.RuleFiles)
	}
	i := slices.IndexFunc(cfg.ScrapeConfigs, func(s scrapeConfig) bool { return s.JobName == "meterd" })
	if i < 0 {
		t.Fatal("no meterd scrape job (the alerts select job=\"meterd\")")
	}
	job := cfg.ScrapeConfigs[i]
	if job.MetricsPath != "/metrics" || len(job.StaticConfigs) == 0 || len(job.StaticConfigs[0].Targets) == 0 ||
		!strings.HasSuffix(job.StaticConfigs[0].Targets[0], ":8480") {
		t.Errorf("meterd job %+v: want /metrics on port 8480", job)
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func mustDashboard(tb testing.TB) dashboard {
	tb.Helper()
	raw, err := os.ReadFile("grafana/meterd.json")
	if err != nil {
		tb.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		tb.Fatalf("grafana/meterd.json: %v", err)
	}
	return d
}

func TestGrafanaDashboard(t *testing.T) {
	known := meterdMetrics(t)
	d := mustDashboard(t)
	if d.Title != "meterd" || d.UID == "" {
		t.Errorf("title %q uid %q", d.Title, d.UID)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Errorf("template variables %v: want a datasource and an instance variable", vars)
	}
	titles := map[string]bool{}
	used := map[string]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range d.Panels {
		titles[p.Title] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v off the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Fatalf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: no query on the ${datasource} variable", p.Title)
		}
		for _, target := range p.Targets {
			names := metricNames(target.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q: expr %q selects no metric", p.Title, target.Expr)
			}
			for _, m := range names {
				used[m] = true
				if !known[m] {
					t.Errorf("panel %q: expr names %s, which meterd does not define", p.Title, m)
				}
			}
		}
	}
	for _, want := range []string{"Decisions per second by outcome", "HTTP requests per second by route", "429s by plan",
		"Decision latency", "Commit duration", "Commit batch size", "Queue depth", "Ledger file size", "Commit errors",
		"Disk free vs floor", "Export lag", "Export backlog", "Overage charges by result", "Since the last successful billing run"} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
	for _, want := range []string{"meterd_export_backlog_events", "meterd_export_lag_seconds", "meterd_export_errors_total",
		"meterd_billing_charges_total", "meterd_billing_last_success_timestamp_seconds", "meterd_ledger_commit_errors_total"} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}

// promtool finds promtool: METER_TEST_PROMTOOL, else PATH. It cannot be
// installed from the Go module proxy (its module has replace directives);
// .ci/run installs Debian's prometheus package for it. Without it the YAML
// checks above are what validate the rules.
func promtool(t *testing.T) string {
	if p := os.Getenv("METER_TEST_PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		return ""
	}
	return p
}

// TestPromtool checks the configuration, the rules and the rules' unit
// tests with Prometheus' own tool, and every dashboard query by loading it
// as a recording rule.
func TestPromtool(t *testing.T) {
	tool := promtool(t)
	if tool == "" {
		t.Skip("METER_TEST_PROMTOOL not set and no promtool on PATH (Debian's prometheus package has it): the rules were checked by the YAML tests only")
	}
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "config", "prometheus/prometheus.yml")
	run("check", "rules", "prometheus/alerts.yml")
	run("test", "rules", "prometheus/alerts_test.yml")

	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	d := mustDashboard(t)
	var exprs []string
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			exprs = append(exprs, target.Expr)
		}
	}
	sort.Strings(exprs)
	for i, e := range exprs {
		e = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*").Replace(e)
		q, _ := json.Marshal(e) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	run("check", "rules", path)
}
