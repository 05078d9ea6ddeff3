//! Diagnostics (retry warnings, traces) on stderr through a tracing subscriber.
//!
//! Quiet by default: only warnings and errors, which are the retries a user should know of.
//! `--verbose` turns it up to `debug` for this crate; `GITOPS_CANARY_LOG` takes a full filter
//! and wins. Every event goes through [`super::console::inert`], so a secret or a forged CI
//! command inside a library's error text is scrubbed as in every other line.

use std::io::Write;

use tracing_subscriber::EnvFilter;

/// The filter for `verbose` and the `GITOPS_CANARY_LOG` value.
pub fn filter(verbose: bool, log: Option<&str>) -> EnvFilter {
    let fallback = if verbose {
        "warn,gitops_canary=debug"
    } else {
        "warn"
    };
    match log.filter(|l| !l.trim().is_empty()) {
        Some(spec) => EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new(fallback)),
        None => EnvFilter::new(fallback),
    }
}

/// Install the subscriber for this process (once; a second call is ignored).
pub fn install(verbose: bool, log: Option<&str>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(verbose, log))
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(|| Scrubbed)
        .try_init();
}

/// stderr, one event at a time, made inert.
struct Scrubbed;

impl Write for Scrubbed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = super::console::inert(&String::from_utf8_lossy(buf));
        std::io::stderr().lock().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
