//! Manifests (work in progress).
use crate::exit::Classify;
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Other(String),
}
impl Classify for ManifestError {
    fn is_bad_input(&self) -> bool {
        true
    }
}
