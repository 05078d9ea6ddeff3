//! One request, whatever the client library: one bounded retry policy (transport errors, 5xx,
//! rate limits with the server's own wait), one deadline per request, and the raw answer.

use super::*;

/// How hard to retry transient faults. Bounded: attempts and each wait are capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The longest `retry-after`/`x-ratelimit-reset` wait honoured; longer ones fail now.
    pub max_server_wait: Duration,
    /// The longest one request may take, connect to last byte; a server that accepts and
    /// never answers is a transient fault after this long.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_server_wait: Duration::from_secs(120),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// One HTTP answer, whatever the client library.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The forge's `message` (GitHub, GitLab) or `error_description`, else the raw body, short.
    pub fn message(&self) -> String {
        let v: Option<serde_json::Value> = serde_json::from_slice(&self.body).ok();
        let from_json = v.as_ref().and_then(|v| {
            let m = v
                .get("message")
                .or_else(|| v.get("error_description"))
                .or_else(|| v.get("error"))?;
            Some(match m {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        });
        let mut text =
            from_json.unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        if let Some(errors) = v.as_ref().and_then(|v| v.get("errors")) {
            text.push_str(&format!(" {errors}"));
        }
        if text.len() > 300 {
            let mut cut = 300;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        text
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// How long the server asked to wait, if this is a rate-limit answer.
    ///
    /// GitHub: `retry-after` seconds, or `x-ratelimit-remaining: 0` with `x-ratelimit-reset`
    /// (epoch seconds). GitLab: `retry-after` or `ratelimit-reset`.
    pub(crate) fn server_wait(&self, now_epoch: u64) -> Option<Duration> {
        if let Some(s) = self
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_secs(s));
        }
        let exhausted = self.header("x-ratelimit-remaining").map(str::trim) == Some("0")
            || self.header("ratelimit-remaining").map(str::trim) == Some("0");
        if exhausted {
            let reset = self
                .header("x-ratelimit-reset")
                .or_else(|| self.header("ratelimit-reset"))
                .and_then(|v| v.trim().parse::<u64>().ok())?;
            return Some(Duration::from_secs(reset.saturating_sub(now_epoch).max(1)));
        }
        None
    }

    /// 5xx, 429, or a 403 carrying rate-limit headers (GitHub's secondary rate limit).
    pub fn is_transient(&self, now_epoch: u64) -> bool {
        self.status >= 500
            || self.status == 429
            || (self.status == 403 && self.server_wait(now_epoch).is_some())
    }
}

/// Send with bounded retries on transport errors and transient statuses; any other status is
/// returned for the caller to interpret. `attempt` must build a fresh request each call.
pub(crate) async fn send<F, Fut>(
    policy: &RetryPolicy,
    ctx: &Ctx<'_>,
    mut attempt: F,
) -> Result<RawResponse, ForgeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<RawResponse, String>>,
{
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.max_retries)
        .with_jitter();
    let max_server_wait = policy.max_server_wait;
    let request_timeout = policy.request_timeout;
    let run = || {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fut = attempt();
        async move {
            // One deadline here covers both transports (octocrab and reqwest).
            let answer = tokio::time::timeout(request_timeout, fut)
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no answer within {}",
                        humantime::format_duration(request_timeout)
                    ))
                });
            let now = crate::clock::since_epoch().as_secs();
            match answer {
                Err(transport) => Err(ForgeError::Unavailable {
                    repo: ctx.repo.to_string(),
                    op: ctx.op,
                    number: ctx.number,
                    status: None,
                    attempts: 0,
                    message: transport,
                    retry_after: None,
                }),
                Ok(raw) if raw.is_transient(now) => Err(ForgeError::Unavailable {
                    repo: ctx.repo.to_string(),
                    op: ctx.op,
                    number: ctx.number,
                    status: Some(raw.status),
                    attempts: 0,
                    message: raw.message(),
                    retry_after: raw.server_wait(now),
                }),
                Ok(raw) => Ok(raw),
            }
        }
    };
    let result = run
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e| {
            matches!(e, ForgeError::Unavailable { retry_after, .. }
                if retry_after.is_none_or(|w| w <= max_server_wait))
        })
        .adjust(|e, dur| {
            // The server's wait wins over our own backoff, but only while retries remain.
            let dur = dur?;
            match e {
                ForgeError::Unavailable { retry_after: Some(w), .. } => Some(*w),
                _ => Some(dur),
            }
        })
        .notify(|e, dur| {
            if let ForgeError::Unavailable { status, message, .. } = e {
                tracing::warn!(repo = ctx.repo, op = ctx.op, status = ?status, %message, wait = ?dur,
                    "forge: transient failure, retrying");
            }
        })
        .await;
    result.map_err(|mut e| {
        if let ForgeError::Unavailable { attempts: a, .. } = &mut e {
            *a = attempts.load(std::sync::atomic::Ordering::Relaxed);
        }
        e
    })
}

/// Percent-encode one path segment (GitLab project paths, branch names in queries).
pub(crate) fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
