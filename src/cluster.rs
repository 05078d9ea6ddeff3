//! cluster adapter (work in progress).
