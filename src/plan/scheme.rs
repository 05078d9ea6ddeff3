//! One scheme for every change the tool makes: rollout ids, branch names, trailers, labels,
//! titles, commit messages and the hidden markers in comments, so any command (and any re-run)
//! finds what another one made.

use super::*;

/// The kinds of change a rollout makes, each on its own branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Stage {
        stage: usize,
        weight: u32,
    },
    Rollback,
    Promote,
    Finish,
    /// A weight that is no configured stage, proposed by hand (`propose --weight N`).
    Weight {
        weight: u32,
    },
}

impl ChangeKind {
    /// The action name in commit trailers and labels.
    pub fn action(&self) -> &'static str {
        match self {
            ChangeKind::Stage { .. } => "stage",
            ChangeKind::Rollback => "rollback",
            ChangeKind::Promote => "promote",
            ChangeKind::Finish => "finish",
            ChangeKind::Weight { .. } => "weight",
        }
    }
}

/// The rollout id when none is configured: the first Ingress, `NS/NAME` as `ns-name`.
pub(crate) fn default_rollout_id(ingress: &str) -> String {
    sanitize(&ingress.replace('/', "-"))
}

/// What proposing `weight` for a rollout with `stages` is: the stage with that weight, so that
/// `propose` and the rollout share one branch, title and trailers (and `reconcile` finds the
/// request `propose` opened); weight 0 is the rollback; any other weight is a change of its
/// own (`.../weight-N`), which `reconcile` recognises by its branch and waits for.
pub(crate) fn change_for_weight(stages: &[Stage], weight: u32) -> ChangeKind {
    if weight == 0 {
        return ChangeKind::Rollback;
    }
    match stages.iter().position(|s| s.weight == weight) {
        Some(i) => ChangeKind::Stage {
            stage: i + 1,
            weight,
        },
        None => ChangeKind::Weight { weight },
    }
}

/// The branch prefix every change of rollout `rollout` lives under.
pub(crate) fn branch_prefix(rollout: &str) -> String {
    format!("gitops-canary/{}/", sanitize(rollout))
}

/// A branch name that says what it does and is the same on every run (how PRs are found again).
pub fn branch(rollout: &str, change: ChangeKind) -> String {
    let prefix = branch_prefix(rollout);
    match change {
        ChangeKind::Stage { stage, weight } => format!("{prefix}stage-{stage}-weight-{weight}"),
        ChangeKind::Rollback => format!("{prefix}rollback"),
        ChangeKind::Promote => format!("{prefix}promote"),
        ChangeKind::Finish => format!("{prefix}finish"),
        ChangeKind::Weight { weight } => format!("{prefix}weight-{weight}"),
    }
}

/// The change a branch of rollout `rollout` carries (the inverse of [`branch`]).
pub(crate) fn parse_branch(rollout: &str, branch: &str) -> Option<ChangeKind> {
    let rest = branch.strip_prefix(&branch_prefix(rollout))?;
    let num = |s: &str| -> Option<u32> {
        (!s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0')))
        .then(|| s.parse().ok())
        .flatten()
    };
    match rest {
        "rollback" => Some(ChangeKind::Rollback),
        "promote" => Some(ChangeKind::Promote),
        "finish" => Some(ChangeKind::Finish),
        _ => {
            if let Some(w) = rest.strip_prefix("weight-") {
                return num(w).map(|weight| ChangeKind::Weight { weight });
            }
            let (stage, weight) = rest.strip_prefix("stage-")?.split_once("-weight-")?;
            Some(ChangeKind::Stage {
                stage: num(stage)? as usize,
                weight: num(weight)?,
            })
        }
    }
}

/// A rollout id as one component of a ref name and a file name: lower-case ASCII letters,
/// digits, `-`, `_` and `.` (anything else becomes `-`, runs of `-` one), no `..`, no leading
/// or trailing `.`/`-`, no `.lock` suffix (git refuses all of these), never empty (`_`).
pub(crate) fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if c.is_ascii_alphanumeric() || "-_.".contains(c) {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if (c == '-' || c == '.') && out.ends_with(c) {
            continue;
        }
        out.push(c);
    }
    loop {
        let before = out.len();
        out = out.trim_matches(['-', '.']).to_string();
        if let Some(stripped) = out.strip_suffix(".lock") {
            out = stripped.to_string();
        }
        if out.len() == before {
            break;
        }
    }
    if out.is_empty() {
        "_".to_string()
    } else {
        out
    }
}

/// Commit trailers that make a commit findable and self-describing.
pub fn trailers(rollout: &str, change: ChangeKind) -> Vec<(String, String)> {
    let mut t = vec![
        ("Gitops-Canary-Rollout".to_string(), one_line(rollout)),
        (
            "Gitops-Canary-Action".to_string(),
            change.action().to_string(),
        ),
    ];
    if let ChangeKind::Stage { stage, .. } = change {
        t.push(("Gitops-Canary-Stage".into(), stage.to_string()));
    }
    if let Some(w) = change_weight(change) {
        t.push(("Gitops-Canary-Weight".into(), w.to_string()));
    }
    t
}

/// The canary weight a change sets, if it sets one (promotion changes images only).
pub(crate) fn change_weight(change: ChangeKind) -> Option<u32> {
    match change {
        ChangeKind::Stage { weight, .. } | ChangeKind::Weight { weight } => Some(weight),
        ChangeKind::Rollback | ChangeKind::Finish => Some(0),
        ChangeKind::Promote => None,
    }
}

pub(super) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The labels of a change's pull request: the configured ones (`gitops-canary` when none)
/// plus `gitops-canary:<action>`.
pub fn labels(configured: &[String], change: ChangeKind) -> Vec<String> {
    let mut l: Vec<String> = if configured.is_empty() {
        vec!["gitops-canary".into()]
    } else {
        configured.to_vec()
    };
    let own = format!("gitops-canary:{}", change.action());
    if !l.contains(&own) {
        l.push(own);
    }
    l
}

/// The labels of `wanted` a request lacks (to add to a request found again).
pub(crate) fn missing_labels(wanted: &[String], have: &[String]) -> Vec<String> {
    wanted
        .iter()
        .filter(|l| !have.contains(l))
        .cloned()
        .collect()
}

/// The hidden marker that finds a stage's gate-results comment again, so a re-run edits it
/// instead of posting another.
pub(crate) fn gate_comment_marker(rollout: &str, stage: usize) -> String {
    format!(
        "<!-- gitops-canary:gates rollout={} stage={stage} -->",
        sanitize(rollout)
    )
}

/// The line a gate comment carries to record its verdict for one base revision, so a later
/// pass (another process: the `reconcile` timer) reads it back instead of baking again.
pub(crate) fn verdict_record(passed: bool, revision: &str) -> String {
    format!(
        "<!-- gitops-canary:verdict {} revision={revision} -->",
        if passed { "pass" } else { "no-pass" }
    )
}

/// Does `body` record a pass of the gates at `revision`?
pub(crate) fn records_pass(body: &str, revision: &str) -> bool {
    !revision.is_empty()
        && body
            .lines()
            .any(|l| l.trim() == verdict_record(true, revision))
}

/// Which of `comments` (id, body) carries `marker`: the first one, as the one to edit.
pub(crate) fn find_marked(comments: &[Comment], marker: &str) -> Option<u64> {
    comments
        .iter()
        .find(|c| c.body.contains(marker))
        .map(|c| c.id)
}

/// The title of a change's commit and pull request.
pub fn title(rollout: &str, change: ChangeKind, total: usize) -> String {
    match change {
        ChangeKind::Stage { stage, weight } => {
            format!("canary {rollout}: stage {stage}/{total}, weight {weight}%")
        }
        ChangeKind::Rollback => format!("canary {rollout}: roll back to weight 0"),
        ChangeKind::Promote => format!("canary {rollout}: promote the canary to stable"),
        ChangeKind::Finish => format!("canary {rollout}: finish, canary weight back to 0"),
        ChangeKind::Weight { weight } => {
            format!("canary {rollout}: weight {weight}% (no configured stage)")
        }
    }
}

/// Commit message: title, body, blank line, trailers.
pub(crate) fn commit_message(
    rollout: &str,
    change: ChangeKind,
    total: usize,
    body: &str,
) -> String {
    let mut m = title(rollout, change, total);
    if !body.is_empty() {
        m.push_str("\n\n");
        m.push_str(body.trim_end());
    }
    m.push_str("\n\n");
    for (k, v) in trailers(rollout, change) {
        m.push_str(&format!("{k}: {v}\n"));
    }
    m
}

/// The stage table shown in every PR body and job summary (Markdown).
pub(crate) fn stage_table(stages: &[Stage], applied: usize, current: Option<usize>) -> String {
    let mut t = String::from("| stage | weight | approval | state |\n| --- | --- | --- | --- |\n");
    for (i, s) in stages.iter().enumerate() {
        let n = i + 1;
        let state = if n <= applied {
            "done"
        } else if Some(n) == current {
            "**this change**"
        } else {
            "next"
        };
        let approval = match s.approval {
            Approval::PullRequest => "merge by a person",
            Approval::Approved => "approvals, then merged by the tool",
            Approval::Auto => "merged when checks pass",
            Approval::Direct => "direct commit",
        };
        t.push_str(&format!("| {n} | {}% | {approval} | {state} |\n", s.weight));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_and_trailers_are_stable() {
        let c = ChangeKind::Stage {
            stage: 2,
            weight: 25,
        };
        assert_eq!(
            branch("Shop/Web Canary", c),
            "gitops-canary/shop-web-canary/stage-2-weight-25"
        );
        assert_eq!(
            branch("x", ChangeKind::Rollback),
            "gitops-canary/x/rollback"
        );
        let m = commit_message("shop-web", c, 4, "");
        assert_eq!(
            m,
            "canary shop-web: stage 2/4, weight 25%\n\nGitops-Canary-Rollout: shop-web\nGitops-Canary-Action: stage\nGitops-Canary-Stage: 2\nGitops-Canary-Weight: 25\n"
        );
    }

    #[test]
    fn sanitize_gives_a_valid_ref_component_for_any_id() {
        let cases = [
            ("shop-web", "shop-web"),
            ("Shop/Web Canary", "shop-web-canary"),
            ("web.lock", "web"),
            ("web.lock.lock", "web"),
            ("web.lock.", "web"),
            ("a..b", "a.b"),
            ("a...b", "a.b"),
            ("", "_"),
            ("...", "_"),
            ("/", "_"),
            ("-.x.-", "x"),
            (".hidden", "hidden"),
            ("trailing/", "trailing"),
            ("ünïcode", "n-code"),
            ("日本", "_"),
            ("@{-1}", "1"),
            ("x~y^z:w?*[", "x-y-z-w"),
            ("a b\tc\n", "a-b-c"),
            ("web_1.2", "web_1.2"),
        ];
        for (id, want) in cases {
            let got = sanitize(id);
            assert_eq!(got, want, "sanitize({id:?})");
            for change in [
                ChangeKind::Stage {
                    stage: 1,
                    weight: 10,
                },
                ChangeKind::Rollback,
                ChangeKind::Weight { weight: 30 },
            ] {
                let b = branch(id, change);
                assert!(
                    git2::Reference::is_valid_name(&format!("refs/heads/{b}")),
                    "{b:?} from {id:?} is not a valid ref"
                );
                assert_eq!(b.matches('/').count(), 2, "{b:?}");
                assert_eq!(parse_branch(id, &b), Some(change), "{b:?}");
            }
            assert!(!state_path(id).contains(".."), "{id:?}");
        }
    }

    #[test]
    fn a_proposed_weight_is_the_stage_with_that_weight() {
        let stages: Vec<Stage> = [10, 25, 50, 100]
            .iter()
            .map(|w| Stage {
                weight: *w,
                approval: Approval::PullRequest,
            })
            .collect();
        let stage2 = ChangeKind::Stage {
            stage: 2,
            weight: 25,
        };
        assert_eq!(change_for_weight(&stages, 25), stage2);
        assert_eq!(
            branch(&default_rollout_id("shop/web-canary"), stage2),
            "gitops-canary/shop-web-canary/stage-2-weight-25"
        );
        assert_eq!(change_for_weight(&stages, 0), ChangeKind::Rollback);
        let off = change_for_weight(&stages, 30);
        assert_eq!(off, ChangeKind::Weight { weight: 30 });
        assert_eq!(branch("shop-web", off), "gitops-canary/shop-web/weight-30");
        assert_eq!(
            trailers("shop-web", off),
            vec![
                ("Gitops-Canary-Rollout".to_string(), "shop-web".to_string()),
                ("Gitops-Canary-Action".to_string(), "weight".to_string()),
                ("Gitops-Canary-Weight".to_string(), "30".to_string()),
            ]
        );
        assert_eq!(
            parse_branch("shop-web", "gitops-canary/other/weight-30"),
            None
        );
        assert_eq!(
            parse_branch("shop-web", "gitops-canary/shop-web/weight-030"),
            None
        );
        assert_eq!(
            labels(&[], off),
            vec![
                "gitops-canary".to_string(),
                "gitops-canary:weight".to_string()
            ]
        );
    }

    #[test]
    fn the_state_record_is_byte_stable_and_reads_back() {
        let r = StateRecord::for_change("shop-web", ChangeKind::Rollback, Some(2), 50);
        assert_eq!(
            r.render(),
            "# gitops-canary rollout state, written by gitops-canary in the same commit as each\n\
             # change it makes to this rollout and read back by every run. Not a manifest.\n\
             rollout: shop-web\naction: rollback\nstatus: rolled-back\nstage: 2\nweight: 0\n"
        );
        assert_eq!(StateRecord::parse(&r.render()), Some(r.clone()));
        assert_eq!(
            StateRecord::parse(&r.render().replace('\n', "\r\n")),
            Some(r)
        );
        let s = StateRecord::for_change(
            "shop-web",
            ChangeKind::Stage {
                stage: 1,
                weight: 10,
            },
            None,
            0,
        );
        assert_eq!(s.status, RecordStatus::Progressing);
        assert_eq!((s.stage, s.weight), (Some(1), 10));
        assert_eq!(
            state_path("Shop/Web"),
            ".gitops-canary/state/shop-web.state"
        );
        assert_eq!(StateRecord::parse("status: nonsense\n"), None);
        assert_eq!(StateRecord::parse("not a record"), None);
    }

    #[test]
    fn gate_comments_are_found_by_their_marker() {
        let m = gate_comment_marker("shop-web", 2);
        assert_eq!(m, "<!-- gitops-canary:gates rollout=shop-web stage=2 -->");
        let c = |id, body: String| Comment { id, body };
        let comments = vec![
            c(1, "hello".to_string()),
            c(
                2,
                format!("stage 1\n{}", gate_comment_marker("shop-web", 1)),
            ),
            c(3, format!("stage 2\n{m}")),
        ];
        assert_eq!(find_marked(&comments, &m), Some(3));
        assert_eq!(find_marked(&comments[..2], &m), None);
    }

    #[test]
    fn stage_table_marks_done_and_current() {
        let stages = vec![
            Stage {
                weight: 10,
                approval: Approval::Auto,
            },
            Stage {
                weight: 100,
                approval: Approval::PullRequest,
            },
        ];
        let t = stage_table(&stages, 1, Some(2));
        assert!(t.contains("| 1 | 10% | merged when checks pass | done |"));
        assert!(t.contains("| 2 | 100% | merge by a person | **this change** |"));
    }

    #[test]
    fn a_gate_comment_records_its_verdict_for_one_revision() {
        let body = format!("| gate | ... |\n\n{}\n", verdict_record(true, "abc123"));
        assert!(records_pass(&body, "abc123"));
        assert!(
            !records_pass(&body, "def456"),
            "another revision: run again"
        );
        assert!(!records_pass(&verdict_record(false, "abc123"), "abc123"));
        assert!(!records_pass(
            "<!-- gitops-canary:verdict pass revision= -->",
            ""
        ));
    }

    #[test]
    fn a_stage_timeout_counts_from_when_it_reached_the_base() {
        let ten_min = Duration::from_secs(600);
        let slice = Some(Duration::from_secs(30));
        // `run`: the whole budget, a timeout is final.
        let b = gate_budget(1_000, 1_000, ten_min, None);
        assert_eq!((b.wait, b.window_open), (ten_min, false));
        // `reconcile` two minutes after the merge: wait a slice; a timeout is a wait.
        let b = gate_budget(1_000, 1_120, ten_min, slice);
        assert_eq!((b.wait, b.window_open), (Duration::from_secs(30), true));
        let v = judge_timeout(
            Verdict::Fail("timed out after 30s: OutOfSync".into()),
            true,
            &b,
        );
        assert!(
            matches!(v, Verdict::Wait(ref r) if r.contains("8m")),
            "{v:?}"
        );
        // A state that failed is a failure inside the window too.
        let v = judge_timeout(Verdict::Fail("Degraded".into()), false, &b);
        assert!(matches!(v, Verdict::Fail(_)));
        // The window ends within this pass: its timeout is final.
        let b = gate_budget(1_000, 1_590, ten_min, slice);
        assert_eq!((b.wait, b.window_open), (Duration::from_secs(10), false));
        // Past the window: one short look, and a timeout fails.
        let b = gate_budget(1_000, 5_000, ten_min, slice);
        assert!(!b.window_open);
        let v = judge_timeout(Verdict::Fail("timed out after 1s".into()), true, &b);
        assert!(matches!(v, Verdict::Fail(_)));
    }
}
