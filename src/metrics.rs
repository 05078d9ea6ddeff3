//! metrics adapter (work in progress).
