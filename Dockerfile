# syntax=docker/dockerfile:1.7
# Quarry container image: quarry-server and quarry-etl in one small non-root image.
#
#   docker build -t quarry:dev .
#   docker run --rm -p 8080:8080 -v "$PWD/data:/data:ro" quarry:dev
#   docker run --rm -v "$PWD/in:/input:ro" -v "$PWD/data:/data" --entrypoint /usr/local/bin/quarry-etl \
#       quarry:dev build /input/orders.csv --out /data --name orders --key o_orderkey
#
# Not built in CI (the CI machines run no Docker engine); k8s/README.md says so. Kept correct by
# reading, and built by scripts/k8s-kind-demo.sh on machines that have Docker.

ARG RUST_VERSION=1.95

# --- build: the workspace's two binaries, release profile, exact Cargo.lock ---------------------
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binaries are copied out of
# the (unpersisted) target mount into /out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p quarry-server -p quarry-etl \
    && install -D -m 0755 target/release/quarry-server /out/quarry-server \
    && install -D -m 0755 target/release/quarry-etl /out/quarry-etl

# --- runtime: glibc + libgcc only, no shell, no package manager, uid 65532 -------------------------
# Same Debian release as the builder (bookworm = debian12), so the glibc the binaries link
# against is the one they run on.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
ENV QUARRY_DATA_DIR=/data \
    QUARRY_LISTEN=0.0.0.0:8080 \
    QUARRY_ADMIN_LISTEN=0.0.0.0:9090 \
    QUARRY_LOG_FORMAT=json
# 8080: the API; 9090: the admin port (/metrics, probes), never published to clients.
EXPOSE 8080 9090
# Exec form, no shell: quarry-server is PID 1 and receives SIGTERM itself (readiness -> 503,
# drain, finish in-flight, exit 0). It installs its own signal handlers, so PID 1's default
# ignore-unless-handled rule does not swallow SIGTERM. Run the ETL with
# `--entrypoint /usr/local/bin/quarry-etl` (Kubernetes: `command:`).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/quarry-server"]
