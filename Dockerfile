# syntax=docker/dockerfile:1
# gitops-canary images, for linux/amd64 and linux/arm64. Targets:
#   runtime (default, last): FROM scratch, the static binary, CA certificates and an empty
#           world-writable /tmp (the binary keeps its private git workspace in the temp
#           dir), non-root.
#   action: the same files, run as root: GitHub requires Docker actions to run as the
#           default user, or the mounted workspace and $GITHUB_OUTPUT are not writable.
#   gitlab: the binary on busybox, because a GitLab job needs a shell (`entrypoint: [""]`).
# The binary links glibc statically (crt-static on the gnu target; OpenSSL and zlib are
# vendored by Cargo.toml), so it needs nothing from the image but CA certificates.
#
# The builder runs on the build machine's own platform ($BUILDPLATFORM) and cross-compiles
# for $TARGETARCH with Debian's cross gcc, so a two-platform build needs no emulation.
#
# Base images are pinned by the digest of their multi-platform index:
#   rust:1-bookworm      Rust 1.97.1, as recorded by docker-library/repo-info
#                        (repos/rust/remote/1-bookworm.md, 2026-08-05).
#   busybox:stable-musl  BusyBox 1.36.1; not checked against the registry from here: the
#                        digest is the one public repositories pin for busybox:stable-musl
#                        (one records it as served on 2026-08-14). Check it with
#                        `docker buildx imagetools inspect busybox:stable-musl` when updating.

FROM --platform=$BUILDPLATFORM rust:1-bookworm@sha256:593db038d36ea0d2e5b22a2e095eb95dbec607d88d658c2f35f65ee880b4f93a AS builder
ARG TARGETARCH
SHELL ["/bin/bash", "-eo", "pipefail", "-c"]
# Cross toolchain when the target is not the build machine's architecture. The linker and
# the C compiler for -sys crates (ring, vendored OpenSSL, libgit2, zlib) are named per target
# triple, so the same settings serve a native and a cross build. The cross packages are not
# version-pinned (DL3008): bookworm replaces superseded versions in its archive, so a pin would
# break the build at the next point release; the pinned base image fixes the suite.
# hadolint ignore=DL3008
RUN case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu;  debarch=amd64; gnu=x86-64 ;; \
      arm64) triple=aarch64-unknown-linux-gnu; debarch=arm64; gnu=aarch64 ;; \
      *) echo "unsupported TARGETARCH '$TARGETARCH'" >&2; exit 1 ;; \
    esac; \
    echo "$triple" > /target-triple; \
    if [ "$(dpkg --print-architecture)" != "$debarch" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "gcc-${gnu}-linux-gnu" "libc6-dev-${debarch}-cross"; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$triple"
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    AR_x86_64_unknown_linux_gnu=x86_64-linux-gnu-ar \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
WORKDIR /src
COPY . .
# /rootfs is the whole runtime file system. /tmp is created here, inside it, because a
# COPY keeps the mode (1777) of the directories it copies but not of the one it creates.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    triple="$(cat /target-triple)"; \
    RUSTFLAGS='-C target-feature=+crt-static' \
      cargo build --release --locked --target "$triple" --bin gitops-canary \
 && bin="target/$triple/release/gitops-canary" \
 && if readelf -l -d "$bin" | grep -E 'INTERP|\(NEEDED\)'; then echo "$bin is not static" >&2; exit 1; fi \
 && install -D -m 0755 "$bin" /rootfs/gitops-canary \
 && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
 && install -d -m 1777 /rootfs/tmp \
 && if [ "$(uname -m)" = "${triple%%-*}" ]; then /rootfs/gitops-canary --version; fi

FROM busybox:stable-musl@sha256:3c6ae8008e2c2eedd141725c30b20d9c36b026eb796688f88205845ef17aa213 AS gitlab
# busybox has its own /tmp (1777).
COPY --from=builder /rootfs/etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /rootfs/gitops-canary /usr/local/bin/gitops-canary
ENTRYPOINT ["/usr/local/bin/gitops-canary"]

FROM scratch AS action
COPY --from=builder /rootfs/ /
# No USER: the image default (root) is what GitHub requires of a Docker action.
ENTRYPOINT ["/gitops-canary"]

FROM scratch AS runtime
COPY --from=builder /rootfs/ /
USER 65532:65532
ENTRYPOINT ["/gitops-canary"]
