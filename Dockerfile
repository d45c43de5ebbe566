# Weir's container image: `docker build -t weir .` from the repository root. The final stage holds
# the weir binary, the shared libraries it links (from the builder, so they match), and the CA
# certificates: no shell, no package manager, a non-root user.
# The stage modules ship in an image of their own (target `modules`), copied into the pod by an
# init container (deploy/kubernetes): `make wasm && docker build --target modules -t weir-modules .`

FROM rust:1.95-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev pkg-config zlib1g-dev cmake ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p weir --bin weir
# The binary, the libraries the dynamic loader resolves for it, and the CA bundle, laid out under
# /out as they are on the builder.
RUN mkdir -p /out/etc/ssl/certs \
    && cp target/release/weir /out/weir \
    && ldd target/release/weir | grep -o '/[^ ]*' | xargs -I{} cp --parents -L {} /out/ \
    && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/

# Stage modules built by `make wasm` (and `make languages`), for the init container's `cp`.
FROM busybox:1.37 AS modules
COPY pipelines/modules/ /modules/
USER 65532:65532

FROM scratch
COPY --from=builder /out/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    WEIR_CACHE_DIR=/var/cache/weir
USER 65532:65532
ENTRYPOINT ["/weir"]
CMD ["--help"]
