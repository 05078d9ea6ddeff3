//! gitops-canary: canary releases through Git.
//!
//! The crate is split the way the tool thinks: pure decisions (`yaml`, `manifest`, `router`,
//! `gate`, `plan`) that take plain values and return plain values, and adapters at the edges
//! (`git`, `forge`, `cluster`, `metrics`) behind small traits. `rollout` is the one loop that
//! observes, decides and acts; `report` holds every line of text; `cli` and `cmd` are a thin
//! shell over them. `.ci/check-layers.py` holds the layers.

// The documentation is for the people working on the crate (`cargo doc
// --document-private-items`, checked in `.ci/run`): links to private items are what it is for.
#![allow(rustdoc::private_intra_doc_links)]

pub mod cli;
pub mod clock;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod exit;
pub mod fault;
pub mod forge;
pub mod gate;
pub mod git;
pub mod manifest;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod rollout;
pub mod router;
pub mod secret;
pub mod yaml;
