//! Open what the settings name, once, for every command: the private workspace (a clone of
//! the remote), the forge client and the gate runner. The forge client is built first, so a
//! missing forge setting fails before any network call; the gate runner connects to the cluster
//! only when a cluster gate is asked for.

use super::gates::{self, Runner};
use super::settings::Settings;
use crate::config::{ClusterMode, ForgeKind};
use crate::forge::{AnyForge, GitHub, GitLab};
use crate::git::{Remote, Workspace};

/// What `connect` opened; each part only when the settings ask for it.
pub(crate) struct Connection {
    /// The workspace (commands that publish).
    pub ws: Option<Workspace>,
    /// The forge client (when requests are made).
    pub forge: Option<AnyForge>,
    /// The gate runner (commands that gate, with the cluster on).
    pub runner: Option<Runner>,
}

pub(crate) async fn connect(s: &Settings) -> anyhow::Result<Connection> {
    let forge = match &s.git {
        Some(g) => match g.requests {
            ForgeKind::Github => Some(AnyForge::GitHub(GitHub::from_env(g.token.clone())?)),
            ForgeKind::Gitlab => Some(AnyForge::GitLab(GitLab::from_env(g.token.clone())?)),
            ForgeKind::None => None,
        },
        None => None,
    };
    let ws = match &s.git {
        Some(g) => {
            let url = match &g.remote {
                Some(u) => u.clone(),
                None => crate::git::origin_url(&s.repo)?,
            };
            Some(Workspace::open(&s.repo, Remote::new(url, g.auth.clone()))?)
        }
        None => None,
    };
    let runner = match &s.gates {
        Some(g) if g.cluster == ClusterMode::Kube => {
            Some(gates::runner(g.runner.clone(), &g.metrics).await?)
        }
        _ => None,
    };
    Ok(Connection { ws, forge, runner })
}
