# syntax=docker/dockerfile:1
#
# meterd: one static binary on a distroless, non-root base image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t meterd .
#   docker run -d --name meterd -p 8480:8480 -v meterd-data:/data meterd
#
# cmd/meterd/docker_test.go builds the binary with the flags of the
# `go build` line below (it parses them from this file) and checks that it
# is static and that `meterd version` and `meterd health` work: keep that
# line a single `RUN go build ...` command.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/meterd ./cmd/meterd
# An empty /data owned by the runtime user: a new named volume copies it,
# ownership included, so meterd can write there without running as root.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="meterd" \
      org.opencontainers.image.description="Self-hosted usage metering: one Go binary, one bbolt file." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/meterd/meterd"
COPY --from=build /out/meterd /usr/local/bin/meterd
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# meterd listens on all interfaces here: give it METER_SERVICE_TOKEN at run
# time (docker run -e METER_SERVICE_TOKEN=...), the bearer token your API
# and gateway send on /v1/*. Without it only API keys meter (account_id is
# refused) and meterd logs a warning that /v1/* is open to anyone who
# reaches the port.
ENV METER_DATA_DIR=/data \
    METER_LISTEN=0.0.0.0:8480 \
    METER_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8480
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/meterd", "health"]
ENTRYPOINT ["/usr/local/bin/meterd"]
CMD ["serve"]
