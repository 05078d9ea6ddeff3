use super::*;

fn pr(state: PrState) -> PullRequest {
    PullRequest {
        number: 7,
        url: "https://example/pr/7".into(),
        branch: "canary/web-25".into(),
        base: "main".into(),
        head_sha: "abc".into(),
        author: "bot".into(),
        title: "t".into(),
        body: "b".into(),
        labels: vec![],
        state,
    }
}

fn approved(n: u32) -> Reviews {
    Reviews {
        approvals: n,
        changes_requested: false,
    }
}

fn is_wait(d: &MergeDecision) -> bool {
    matches!(d, MergeDecision::Wait(_))
}
fn is_blocked(d: &MergeDecision) -> bool {
    matches!(d, MergeDecision::Blocked(_))
}

#[test]
fn pull_request_gate_always_waits_for_a_human() {
    let d = decide_merge(
        ApprovalGate::PullRequest,
        &pr(PrState::Open),
        &approved(5),
        &Checks::Success,
        Mergeable::Yes,
    );
    assert!(is_wait(&d), "{d:?}");
}

#[test]
fn direct_gate_never_merges_a_request() {
    let d = decide_merge(
        ApprovalGate::Direct,
        &pr(PrState::Open),
        &approved(5),
        &Checks::Success,
        Mergeable::Yes,
    );
    assert!(is_blocked(&d), "{d:?}");
}

#[test]
fn approved_gate_counts_approvals() {
    let gate = ApprovalGate::Approved { min: 2 };
    let open = pr(PrState::Open);
    let d = decide_merge(gate, &open, &approved(1), &Checks::Success, Mergeable::Yes);
    assert_eq!(
        d,
        MergeDecision::Wait("#7 has 1 of 2 required approvals".into())
    );
    let d = decide_merge(gate, &open, &approved(2), &Checks::Success, Mergeable::Yes);
    assert_eq!(d, MergeDecision::Merge);
    let d = decide_merge(gate, &open, &approved(3), &Checks::None, Mergeable::Yes);
    assert_eq!(d, MergeDecision::Merge);
}

#[test]
fn approved_gate_blocks_on_requested_changes_even_with_approvals() {
    let r = Reviews {
        approvals: 3,
        changes_requested: true,
    };
    let d = decide_merge(
        ApprovalGate::Approved { min: 1 },
        &pr(PrState::Open),
        &r,
        &Checks::Success,
        Mergeable::Yes,
    );
    assert!(is_blocked(&d), "{d:?}");
}

#[test]
fn auto_gate_needs_no_approval_but_green_checks() {
    let open = pr(PrState::Open);
    assert_eq!(
        decide_merge(
            ApprovalGate::Auto,
            &open,
            &approved(0),
            &Checks::Success,
            Mergeable::Yes
        ),
        MergeDecision::Merge
    );
    assert!(is_wait(&decide_merge(
        ApprovalGate::Auto,
        &open,
        &approved(0),
        &Checks::Pending,
        Mergeable::Yes
    )));
    assert_eq!(
        decide_merge(
            ApprovalGate::Auto,
            &open,
            &approved(0),
            &Checks::Failure("lint".into()),
            Mergeable::Yes
        ),
        MergeDecision::Blocked("check `lint` failed on #7".into())
    );
}

#[test]
fn mergeability_unknown_waits_and_conflict_blocks() {
    let open = pr(PrState::Open);
    assert!(is_wait(&decide_merge(
        ApprovalGate::Auto,
        &open,
        &approved(0),
        &Checks::Success,
        Mergeable::Unknown
    )));
    assert!(is_blocked(&decide_merge(
        ApprovalGate::Auto,
        &open,
        &approved(0),
        &Checks::Success,
        Mergeable::No
    )));
}

#[test]
fn failed_check_blocks_before_missing_approvals_wait() {
    let d = decide_merge(
        ApprovalGate::Approved { min: 2 },
        &pr(PrState::Open),
        &approved(0),
        &Checks::Failure("ci".into()),
        Mergeable::Unknown,
    );
    assert!(is_blocked(&d), "{d:?}");
}

#[test]
fn merged_or_closed_requests_are_not_merged_again() {
    for state in [
        PrState::Merged {
            merge_sha: "m".into(),
        },
        PrState::Closed,
    ] {
        for gate in [
            ApprovalGate::Auto,
            ApprovalGate::Approved { min: 0 },
            ApprovalGate::PullRequest,
        ] {
            let d = decide_merge(
                gate,
                &pr(state.clone()),
                &approved(9),
                &Checks::Success,
                Mergeable::Yes,
            );
            assert!(is_blocked(&d), "{gate:?} {state:?}: {d:?}");
        }
    }
}

#[test]
fn picks_open_request_over_newer_closed_one() {
    let mk = |n, state| PullRequest {
        number: n,
        ..pr(state)
    };
    let got = pick_for_branch(vec![mk(3, PrState::Closed), mk(2, PrState::Open)]);
    assert_eq!(got.map(|p| p.number), Some(2));
    let got = pick_for_branch(vec![
        mk(3, PrState::Closed),
        mk(
            1,
            PrState::Merged {
                merge_sha: "x".into(),
            },
        ),
    ]);
    assert_eq!(got.map(|p| p.number), Some(3));
    assert_eq!(pick_for_branch(vec![]), None);
}

#[test]
fn server_wait_reads_retry_after_and_ratelimit_reset() {
    let mut raw = RawResponse {
        status: 403,
        headers: http::HeaderMap::new(),
        body: br#"{"message":"You have exceeded a secondary rate limit"}"#.to_vec(),
    };
    assert_eq!(raw.server_wait(1000), None);
    assert!(!raw.is_transient(1000));
    raw.headers
        .insert("x-ratelimit-remaining", "0".parse().unwrap());
    raw.headers
        .insert("x-ratelimit-reset", "1007".parse().unwrap());
    assert_eq!(raw.server_wait(1000), Some(Duration::from_secs(7)));
    assert!(raw.is_transient(1000));
    raw.headers.insert("retry-after", "3".parse().unwrap());
    assert_eq!(raw.server_wait(1000), Some(Duration::from_secs(3)));
    assert_eq!(raw.message(), "You have exceeded a secondary rate limit");
}

#[test]
fn permission_and_config_errors_are_bad_input() {
    use crate::fault::Classify;
    let p = ForgeError::Permission {
        repo: "o/r".into(),
        op: "merge",
        number: Some(3),
        status: 403,
        permission: "contents: write".into(),
        message: "Resource not accessible by integration".into(),
    };
    assert!(p.is_bad_input());
    assert_eq!(
        p.to_string(),
        "o/r: merge #3: HTTP 403: the token lacks `contents: write` (Resource not accessible by integration)"
    );
    let u = ForgeError::Unavailable {
        repo: "o/r".into(),
        op: "get",
        number: None,
        status: Some(502),
        attempts: 6,
        message: "bad gateway".into(),
        retry_after: None,
    };
    assert!(!u.is_bad_input());
}
