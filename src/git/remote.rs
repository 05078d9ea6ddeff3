//! Remotes, credentials and commit identity; scrubbing of secrets and URL userinfo from any
//! text that leaves this module.

use super::*;

// ---------------------------------------------------------------------------------------------
// Remote, credentials, identity

/// A Git remote and how to authenticate to it.
#[derive(Clone)]
pub struct Remote {
    /// `https://`, `http://`, `ssh://`, `git@host:path`, `file://` or a plain path.
    pub url: String,
    pub auth: Auth,
}

impl Remote {
    pub fn new(url: impl Into<String>, auth: Auth) -> Self {
        Remote {
            url: url.into(),
            auth,
        }
    }

    /// The URL without userinfo, safe to print.
    pub(crate) fn display_url(&self) -> String {
        strip_userinfo(&self.url)
    }

    /// Credentials written into an http(s) URL move into `Auth` so libgit2 never sees them in the
    /// URL (it would echo the URL in some messages).
    pub(super) fn normalized(self) -> Remote {
        let Remote { url, auth } = self;
        let Ok(mut parsed) = url::Url::parse(&url) else {
            return Remote { url, auth };
        };
        if !matches!(parsed.scheme(), "http" | "https") || parsed.username().is_empty() {
            return Remote { url, auth };
        }
        let user = percent_decode(parsed.username());
        let password = parsed.password().map(percent_decode);
        let auth = match (auth, password) {
            (Auth::None, Some(password)) => Auth::Token {
                user,
                token: Token::new(password),
            },
            // A lone userinfo on https is a token by convention (`https://TOKEN@host/...`).
            (Auth::None, None) => Auth::Token {
                user: "x-access-token".to_string(),
                token: Token::new(user),
            },
            (auth, _) => auth,
        };
        // Setting an empty username/password cannot fail on http(s) URLs.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        Remote {
            url: parsed.to_string(),
            auth,
        }
    }

    /// Local transports (paths, `file://`) cannot do shallow fetches in libgit2.
    pub(super) fn is_local(&self) -> bool {
        let u = self.url.as_str();
        if u.starts_with("file://") {
            return true;
        }
        if u.contains("://") {
            return false;
        }
        // scp-like `host:path` has a colon before any slash; a path does not.
        match (u.find(':'), u.find('/')) {
            (Some(c), Some(s)) => s < c,
            (Some(_), None) => false,
            _ => true,
        }
    }

    pub(super) fn secrets(&self) -> Vec<&Token> {
        match &self.auth {
            Auth::None => vec![],
            Auth::Token { token, .. } => vec![token],
            Auth::SshKey { passphrase, .. } => passphrase.iter().collect(),
            Auth::SshKeyContent {
                private_key,
                passphrase,
            } => std::iter::once(private_key).chain(passphrase).collect(),
        }
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.display_url())
            .field("auth", &self.auth)
            .finish()
    }
}

/// How to authenticate. `Token` is sent as HTTP basic auth (user + token as password).
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Token {
        user: String,
        token: Token,
    },
    SshKey {
        private_key: PathBuf,
        passphrase: Option<Token>,
    },
    /// The key's content, as actions/checkout's `ssh-key` input takes it: never written to disk.
    SshKeyContent {
        private_key: Token,
        passphrase: Option<Token>,
    },
}

impl Auth {
    /// An SSH key given as its content (`-----BEGIN ...`) or as a path to it.
    pub fn ssh_key(value: &str) -> Self {
        if value.trim_start().starts_with("-----BEGIN") {
            // A key pasted into a CI secret often loses its final newline; libssh2 wants it.
            let mut key = value.trim().to_string();
            key.push('\n');
            Auth::SshKeyContent {
                private_key: Token::new(key),
                passphrase: None,
            }
        } else {
            Auth::SshKey {
                private_key: PathBuf::from(value),
                passphrase: None,
            }
        }
    }

    /// GitHub App / Actions tokens authenticate as `x-access-token`.
    pub fn github(token: Token) -> Self {
        Auth::Token {
            user: "x-access-token".to_string(),
            token,
        }
    }

    /// GitLab project, group and CI job tokens authenticate as `oauth2`.
    pub fn gitlab(token: Token) -> Self {
        Auth::Token {
            user: "oauth2".to_string(),
            token,
        }
    }

    pub(super) fn user(&self) -> Option<String> {
        match self {
            Auth::Token { user, .. } => Some(user.clone()),
            _ => None,
        }
    }
}

/// Commit author and committer identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Author {
            name: name.into(),
            email: email.into(),
        }
    }

    /// The identity GitHub shows as the Actions bot (the id prefix links the avatar).
    pub fn github_actions_bot() -> Self {
        Author::new(
            "github-actions[bot]",
            "41898282+github-actions[bot]@users.noreply.github.com",
        )
    }
}

/// The Git credentials for a forge token. On GitLab without a token of its own, the job's
/// `CI_JOB_TOKEN` is used for Git only, as user `gitlab-ci-token` (the one user GitLab accepts
/// it for; it can fetch, and push where the project allows job tokens to push); it cannot be
/// used for the merge-request API, which needs a project or group access token.
pub(crate) fn token_auth(token: Option<&Token>, gitlab: bool, job_token: Option<String>) -> Auth {
    match (token, gitlab) {
        (Some(t), true) => Auth::gitlab(t.clone()),
        (Some(t), false) => Auth::github(t.clone()),
        (None, true) => match job_token {
            Some(job) if !job.is_empty() => Auth::Token {
                user: "gitlab-ci-token".to_string(),
                token: Token::new(job),
            },
            _ => Auth::None,
        },
        (None, false) => Auth::None,
    }
}

pub(crate) fn strip_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Remove URL userinfo and the remote's secrets from a libgit2 message.
pub(super) fn scrub(text: &str, remote: Option<&Remote>) -> String {
    let mut out = text.to_string();
    if let Some(r) = remote {
        out = out.replace(&r.url, &r.display_url());
        out = crate::secret::redact(&out, &r.secrets());
    }
    // Any other URL with userinfo in the text (libgit2 may print redirect targets).
    let mut cleaned = String::with_capacity(out.len());
    for (i, word) in out.split(' ').enumerate() {
        if i > 0 {
            cleaned.push(' ');
        }
        cleaned.push_str(&strip_userinfo(word));
    }
    cleaned
}

pub(super) fn percent_decode(s: &str) -> String {
    pub(super) fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
