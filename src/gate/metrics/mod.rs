//! The metrics analysis gate: which PromQL to ask, how to read one answer, and how a series of
//! answers over the bake time becomes one verdict.
//!
//! Everything here is pure. `metrics::run_analysis` does the querying and the waiting and feeds
//! these modules plain numbers; the tests feed them the same numbers by hand. A check is a PromQL
//! template with bounds ([`MetricCheck`]) and [`Vars`] fill its placeholders; `providers` holds
//! each implementation's built-in queries and lets a user's templates replace them, `template`
//! renders them, and `analysis` judges values and counts runs into one verdict. Whatever the
//! source of the queries, the same rules judge the numbers.

mod analysis;
mod providers;
mod template;

pub use analysis::*;
pub use providers::*;
pub use template::*;

use std::time::Duration;

use serde::Serialize;

/// One metric the canary must satisfy: a PromQL template and its bounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricCheck {
    pub name: String,
    /// PromQL with `{{namespace}}`, `{{ingress}}` (or `{{route}}`), `{{service}}`, `{{interval}}`
    /// placeholders.
    pub query: String,
    /// The value must be at least this (a success rate).
    pub min: Option<f64>,
    /// The value must be at most this (a latency).
    pub max: Option<f64>,
}

/// What the placeholders stand for in one analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vars {
    /// Namespace of the Ingresses.
    pub namespace: String,
    /// The primary (stable) Ingress: ingress-nginx reports canary traffic under its name. For an
    /// HTTPRoute canary, the HTTPRoute (`{{route}}` is the same value).
    pub ingress: String,
    /// The canary's backend Service (for custom queries).
    pub service: String,
    /// The PromQL range of one run, e.g. `60s`.
    pub interval: String,
}

impl Vars {
    pub fn new(
        namespace: impl Into<String>,
        ingress: impl Into<String>,
        service: impl Into<String>,
        interval: Duration,
    ) -> Self {
        Vars {
            namespace: namespace.into(),
            ingress: ingress.into(),
            service: service.into(),
            interval: prom_duration(interval),
        }
    }
}

/// A PromQL duration for `d`: whole seconds (`90s`), or milliseconds below a second's precision.
pub(crate) fn prom_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prom_duration_formats() {
        assert_eq!(prom_duration(Duration::from_secs(90)), "90s");
        assert_eq!(prom_duration(Duration::from_millis(1500)), "1500ms");
    }
}
