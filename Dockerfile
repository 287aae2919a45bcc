# syntax=docker/dockerfile:1
# Build: docker build -t s3ferry .
# Run:   docker run -p 8333:8333 -p 9333:9333 -v $PWD/config.toml:/etc/s3ferry/config.toml s3ferry
# docs/deploy.md has a Kubernetes sidecar example and a systemd unit; tests/it/deploy.rs checks
# this file's commands, ports and paths against the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin s3ferry
# The example config with its data under /var/lib/s3ferry (writable by the runtime user), and
# both the S3 and the admin listener on all interfaces inside the container (so that port
# mappings and probes from outside reach them).
COPY config.example.toml ./
RUN mkdir -p /out/data/local /out/data/archive \
 && sed -e 's#"\./data/#"/var/lib/s3ferry/#' \
        -e 's#^listen = .*#listen = "0.0.0.0:8333"#' \
        -e 's#^admin_listen = .*#admin_listen = "0.0.0.0:9333"#' \
        config.example.toml > /out/config.toml

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/s3ferry /usr/local/bin/s3ferry
COPY --from=build /out/config.toml /etc/s3ferry/config.toml
COPY --from=build --chown=nonroot:nonroot /out/data /var/lib/s3ferry
# 8333: S3. 9333: /healthz, /readyz, /metrics.
EXPOSE 8333 9333
USER nonroot
# Distroless has no shell or curl: the binary checks itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["s3ferry", "health", "--url", "http://127.0.0.1:9333/healthz", "--timeout-secs", "2"]
ENTRYPOINT ["s3ferry"]
CMD ["serve", "--config", "/etc/s3ferry/config.toml"]
