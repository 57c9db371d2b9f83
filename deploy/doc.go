// Package deploy holds no code: it is the home of meterd's deployment
// examples (the Grafana dashboard in grafana/, the Prometheus scrape
// configuration and alert rules in prometheus/), and its test keeps them
// true to the metrics meterd actually exports. The Dockerfile lives at the
// repository root and is checked by cmd/meterd's tests.
package deploy
