//! The one integration-test binary (as ripgrep and zizmor have): every file under `tests/it/`
//! is a module, and `support/` is compiled once for all of them.
//!
//! Tests that need a tool (git with http-backend, sshd, Prometheus, the OpenAPI spec and Prism)
//! print SKIP when it is missing, except under `GITOPS_CANARY_REQUIRE_TOOLS` (set by
//! `.ci/test`), where a missing tool fails the test.

#![recursion_limit = "256"]

mod support;

mod action_yml;
mod check_metrics_cli;
mod ci_reports_e2e;
mod ci_runner_sim;
mod cli_manifest;
mod cli_propose;
mod cli_route;
mod cluster_check_cli;
mod cluster_gate_runner;
mod cluster_gates;
mod corpus;
mod e2e_harness;
mod edit_cases;
mod forge_github;
mod forge_gitlab;
mod forge_spec;
mod git_publish;
mod git_ssh;
mod git_workspace;
mod health_corpus;
mod helm_values;
mod httproute_cases;
mod httproute_corpus;
mod httproute_proptest;
mod kustomize_cases;
mod kustomize_plan;
mod metrics_prometheus;
mod metrics_providers;
mod proptest_edit;
mod report_github;
mod report_gitlab;
mod rollout_e2e;
mod user_checkout;
