# syntax=docker/dockerfile:1
# Build: docker build -t s3ferry .
# Run:   docker run -p 8333:8333 -v $PWD/config.toml:/etc/s3ferry/config.toml s3ferry
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin s3ferry
# The example config with its data under /var/lib/s3ferry (writable by the runtime user) and
# listening on all interfaces inside the container.
COPY config.example.toml ./
RUN mkdir -p /out/data/local /out/data/archive \
 && sed -e 's#"\./data/#"/var/lib/s3ferry/#' -e 's#^listen = .*#listen = "0.0.0.0:8333"#' \
        config.example.toml > /out/config.toml

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/s3ferry /usr/local/bin/s3ferry
COPY --from=build /out/config.toml /etc/s3ferry/config.toml
COPY --from=build --chown=nonroot:nonroot /out/data /var/lib/s3ferry
EXPOSE 8333
USER nonroot
ENTRYPOINT ["s3ferry"]
CMD ["serve", "--config", "/etc/s3ferry/config.toml"]
