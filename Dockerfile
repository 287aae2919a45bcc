# syntax=docker/dockerfile:1
# Build: docker build -t s3ferry .
# Run:   docker run -p 8333:8333 -v $PWD/config.toml:/etc/s3ferry/config.toml s3ferry
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin s3ferry

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/s3ferry /usr/local/bin/s3ferry
COPY config.example.toml /etc/s3ferry/config.toml
ENV S3FERRY_LISTEN=0.0.0.0:8333
EXPOSE 8333
USER nonroot
ENTRYPOINT ["s3ferry"]
CMD ["serve", "--config", "/etc/s3ferry/config.toml"]
