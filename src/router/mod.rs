//! Routers (work in progress).
