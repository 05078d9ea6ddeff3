# syntax=docker/dockerfile:1
# gitops-canary images. Targets:
#   runtime (default, last): FROM scratch, the static binary and CA certificates, non-root.
#   action: the same files, run as root: GitHub requires Docker actions to run as the
#           default user, or the mounted workspace and $GITHUB_OUTPUT are not writable.
#   gitlab: the binary on busybox, because a GitLab job needs a shell (`entrypoint: [""]`).
# The binary links glibc statically (crt-static on the gnu target; OpenSSL and zlib are
# vendored by Cargo.toml), so it needs nothing from the image but CA certificates.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/gitops-canary /gitops-canary \
 && /gitops-canary --version

FROM busybox:stable-musl AS gitlab
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /gitops-canary /usr/local/bin/gitops-canary
ENTRYPOINT ["/usr/local/bin/gitops-canary"]

FROM scratch AS action
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /gitops-canary /gitops-canary
# No USER: the image default (root) is what GitHub requires of a Docker action.
ENTRYPOINT ["/gitops-canary"]

FROM scratch AS runtime
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /gitops-canary /gitops-canary
USER 65532:65532
ENTRYPOINT ["/gitops-canary"]
