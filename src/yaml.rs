//! YAML span tree (work in progress).
