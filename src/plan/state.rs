//! The rollout's state record, a small file in the base branch's tree written in the same commit
//! as each change, so the state can be read from the tree alone (a shallow checkout too).

use super::*;

// The state record

/// Where the state records live in the repository. Deliberately not `*.yaml`: Argo CD directory
/// applications and Flux's generated kustomization take every `*.yaml` for a manifest.
pub(crate) const STATE_DIR: &str = ".gitops-canary/state";

/// The state record of rollout `rollout`, relative to the repository root.
pub(crate) fn state_path(rollout: &str) -> String {
    format!("{STATE_DIR}/{}.state", sanitize(rollout))
}

/// Where a rollout stands, as its last change left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RecordStatus {
    Progressing,
    RolledBack,
    Promoting,
    Promoted,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Progressing => "progressing",
            RecordStatus::RolledBack => "rolled-back",
            RecordStatus::Promoting => "promoting",
            RecordStatus::Promoted => "promoted",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            RecordStatus::Progressing,
            RecordStatus::RolledBack,
            RecordStatus::Promoting,
            RecordStatus::Promoted,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// The small file the tool writes in the same commit as each change it makes, so that where
/// a rollout stands is readable from the base branch's tree alone (a shallow checkout, a
/// squash merge that drops trailers, a rollback hundreds of commits back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct StateRecord {
    pub rollout: String,
    pub action: String,
    pub status: RecordStatus,
    /// The stage the change applies (a stage), or the stage the rollout had reached.
    pub stage: Option<usize>,
    /// The canary weight after the change.
    pub weight: u32,
}

impl StateRecord {
    /// The record a change leaves: `stage` is the stage reached before it (for changes that
    /// are no stage), `weight` the canary weight after it.
    pub(crate) fn for_change(
        rollout: &str,
        change: ChangeKind,
        stage: Option<usize>,
        weight: u32,
    ) -> Self {
        let (status, stage) = match change {
            ChangeKind::Stage { stage, .. } => (RecordStatus::Progressing, Some(stage)),
            ChangeKind::Weight { .. } => (RecordStatus::Progressing, stage),
            ChangeKind::Rollback => (RecordStatus::RolledBack, stage),
            ChangeKind::Promote => (RecordStatus::Promoting, stage),
            ChangeKind::Finish => (RecordStatus::Promoted, stage),
        };
        StateRecord {
            rollout: one_line(rollout),
            action: change.action().to_string(),
            status,
            stage,
            weight: change_weight(change).unwrap_or(weight),
        }
    }

    /// The file's bytes: a comment, then one `key: value` per line, always in this order (so
    /// the same state is the same bytes and a diff shows only what changed).
    pub fn render(&self) -> String {
        let mut s = String::from(
            "# gitops-canary rollout state, written by gitops-canary in the same commit as each\n\
             # change it makes to this rollout and read back by every run. Not a manifest.\n",
        );
        s.push_str(&format!("rollout: {}\n", self.rollout));
        s.push_str(&format!("action: {}\n", self.action));
        s.push_str(&format!("status: {}\n", self.status.as_str()));
        if let Some(stage) = self.stage {
            s.push_str(&format!("stage: {stage}\n"));
        }
        s.push_str(&format!("weight: {}\n", self.weight));
        s
    }

    /// Read a record back; `None` when it is not one (then the trailers decide).
    pub fn parse(text: &str) -> Option<Self> {
        let mut rollout = None;
        let mut action = None;
        let mut status = None;
        let mut stage = None;
        let mut weight = None;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (k, v) = line.split_once(':')?;
            let v = v.trim();
            match k.trim() {
                "rollout" => rollout = Some(v.to_string()),
                "action" => action = Some(v.to_string()),
                "status" => status = Some(RecordStatus::parse(v)?),
                "stage" => stage = Some(v.parse().ok()?),
                "weight" => weight = Some(v.parse().ok()?),
                _ => {}
            }
        }
        Some(StateRecord {
            rollout: rollout?,
            action: action?,
            status: status?,
            stage,
            weight: weight?,
        })
    }
}
