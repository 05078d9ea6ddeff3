//! What every module's error says about itself, with no knowledge of exit codes: whether it is
//! the user's input (exit 2) or the world's state (exit 1). The lowest layer, so any module can
//! implement it; `exit` (near the top) reads it to choose the process exit code.

/// Errors that are the user's input rather than the world's state implement this.
pub trait Classify {
    fn is_bad_input(&self) -> bool;
}

/// A usage problem found outside a typed module (a flag combination): always bad input.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);
