//! report adapter (work in progress).
