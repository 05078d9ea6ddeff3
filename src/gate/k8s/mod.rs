//! Kubernetes gates: pure verdicts over one observation of cluster objects.
//!
//! Each function takes what a watch last delivered (k8s-openapi types, or a JSON value for the
//! Argo CD `Application` and Flux `Kustomization` custom resources, whose schemas we do not want
//! to vendor) and answers with a [`Verdict`]. `cluster` re-evaluates them on every watch event,
//! so these must be cheap and must never block; they decide, they never fetch. `sync` holds the
//! rules for the `synced` gate (the live Ingress, Argo CD, Flux), `workload` the health rules
//! for Deployments and pods, and [`combine`] folds the verdicts over several objects into one.

mod sync;
mod workload;

pub use sync::*;
pub use workload::*;

use crate::gate::Verdict;

/// The first non-pass verdict, preferring a failure over a wait: what a gate over several
/// objects reports.
pub(crate) fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let mut first_other = None;
    for v in verdicts {
        match v {
            Verdict::Fail(_) => return v,
            Verdict::Pass => {}
            other => {
                if first_other.is_none() {
                    first_other = Some(other);
                }
            }
        }
    }
    first_other.unwrap_or(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_prefers_failure() {
        assert_eq!(combine([Verdict::Pass, Verdict::Pass]), Verdict::Pass);
        assert_eq!(
            combine([Verdict::Wait("a".into()), Verdict::Fail("b".into())]),
            Verdict::Fail("b".into())
        );
        assert_eq!(
            combine([Verdict::Pass, Verdict::Wait("a".into())]),
            Verdict::Wait("a".into())
        );
    }
}
