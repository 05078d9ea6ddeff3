//! git adapter (work in progress).
