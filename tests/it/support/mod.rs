//! What the integration tests share: fake forges and API server, a real Git server over
//! HTTP and SSH, Prometheus, the end-to-end world and readers for CI file formats. Compiled
//! once, in the one test binary.

pub mod ci;
pub mod e2e;
pub mod fake_github;
pub mod fake_gitlab;
pub mod fake_kube;
pub mod git_server;
pub mod helm;
pub mod prometheus;
pub mod ssh_server;
