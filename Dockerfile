# Quarry container image: quarry-server and quarry-etl, statically linked, in one `FROM scratch`
# stage: no shell, no package manager, no libc to patch, uid 65532. Build it with
#
#   scripts/image.sh                 # -> quarry:dev, prints its size
#
# which builds both binaries on the host (release, glibc with `-C target-feature=+crt-static`,
# its own target dir target/image) and feeds them to this stage as the build context. Nothing
# is pulled: no base image, no builder image, no `# syntax=` frontend. The same script runs in
# CI (scripts/test.sh -> scripts/container-test.sh) and in scripts/k8s-kind-demo.sh, so the
# stage users get is the stage that is tested.
#
#   docker run --rm -p 8080:8080 -v "$PWD/data:/data:ro" quarry:dev
#   docker run --rm -p 8080:8080 --tmpfs /cache:uid=65532 -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY \
#       -e AWS_REGION quarry:dev --source s3://bucket/prefix --cache-dir /cache
#   docker run --rm -v "$PWD/in:/input:ro" -v "$PWD/data:/data" --entrypoint /usr/local/bin/quarry-etl \
#       quarry:dev build /input/orders.csv --out /data --name orders --key o_orderkey
#
# The binaries resolve no names (numeric --listen addresses only), so a static glibc needs no
# NSS modules at run time.
FROM scratch
COPY quarry-server quarry-etl /usr/local/bin/
USER 65532:65532
# QUARRY_DATA_DIR is a default that --source (flag or QUARRY_SOURCE) overrides: an image ENV
# cannot be unset by `docker run -e` or a pod spec, so the server lets a data directory from
# the environment give way to --source (a --data-dir flag beside --source is still an error).
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
