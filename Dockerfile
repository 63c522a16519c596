# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, ship a slim non-root image.
# The data folder exists in the image, owned by the idgate user, so a new
# named volume mounted there starts out writable for it.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY templates templates
COPY benches benches
RUN cargo build --release --locked --bin idgate && strip target/release/idgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/idgate --create-home idgate \
    && install -d -o idgate -g idgate /var/lib/idgate/data
COPY --from=build /src/target/release/idgate /usr/local/bin/idgate
COPY config/idgate.toml /etc/idgate/idgate.toml
USER idgate
WORKDIR /var/lib/idgate
ENV IDGATE_CONFIG=/etc/idgate/idgate.toml \
    IDGATE_DATABASE_URL=sqlite:///var/lib/idgate/data/idgate.db
VOLUME ["/var/lib/idgate/data"]
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/idgate"]
CMD ["serve"]
