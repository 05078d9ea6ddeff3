//! Prometheus adapter: instant queries over the HTTP API, and the loop that runs the metrics
//! analysis for one canary stage.
//!
//! `prometheus` holds the client: it asks `/api/v1/query` for one number at an explicit time,
//! retries faults (5xx, 429, connection errors) with bounded backoff, and keeps its credentials
//! out of every message. `analysis` renders the checks once, then every interval asks a
//! [`MetricSource`] for the canary's request count and each check's value and feeds them to the
//! pure `gate::metrics::Analysis`. Time comes from a [`Clock`], so tests run a whole bake time
//! instantly over backfilled data.

mod analysis;
mod prometheus;

pub use analysis::*;
pub use prometheus::*;

use crate::gate::metrics::TemplateError;

/// What can go wrong talking to Prometheus or preparing the queries.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("metric check {check:?}: {source}")]
    Template {
        check: String,
        #[source]
        source: TemplateError,
    },
    #[error("invalid metrics analysis settings: {reason}")]
    InvalidConfig { reason: String },
    #[error("cannot build the HTTP client for Prometheus: {reason}")]
    Client { reason: String },
    #[error("Prometheus at {url} unreachable for query {query:?}: {source}")]
    Transport {
        url: String,
        query: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Prometheus at {url} answered HTTP {status} to query {query:?}: {body}")]
    Status {
        url: String,
        query: String,
        status: u16,
        body: String,
    },
    #[error("Prometheus at {url} rejected query {query:?} (HTTP {status}, {error_type}): {error}")]
    Api {
        url: String,
        query: String,
        status: u16,
        error_type: String,
        error: String,
    },
    #[error("Prometheus at {url} sent an unreadable answer to query {query:?}: {reason}")]
    Decode {
        url: String,
        query: String,
        reason: String,
    },
    #[error(
        "query {query:?} returned {found}; a check needs one value (aggregate it, e.g. with sum())"
    )]
    Shape { query: String, found: String },
}

impl MetricsError {
    /// Faults worth another try: the server or the path to it, not the question.
    pub fn is_transient(&self) -> bool {
        match self {
            MetricsError::Transport { .. } => true,
            MetricsError::Status { status, .. } | MetricsError::Api { status, .. } => {
                *status >= 500 || *status == 429
            }
            _ => false,
        }
    }
}

impl crate::fault::Classify for MetricsError {
    fn is_bad_input(&self) -> bool {
        match self {
            MetricsError::InvalidUrl { .. }
            | MetricsError::InvalidConfig { .. }
            | MetricsError::Template { .. }
            | MetricsError::Shape { .. } => true,
            // bad_data is Prometheus saying the PromQL (a user's custom query) does not parse.
            MetricsError::Api { error_type, .. } => error_type == "bad_data",
            _ => false,
        }
    }
}
