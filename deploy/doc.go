// Package deploy holds no code: it is the home of meterd's deployment
// examples (the Grafana dashboard in grafana/, the Prometheus scrape
// configuration and alert rules in prometheus/, compose.yaml with
// Grafana's provisioning in grafana/provisioning/, and the systemd unit
// in systemd/), and its tests keep them true to the metrics meterd
// actually exports and to the files they mount. The Dockerfile lives at the
// repository root and is checked by cmd/meterd's tests.
package deploy
