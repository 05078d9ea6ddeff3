//! The REST layer both adapters stand on, so they share one policy: every call is retried by
//! [`send`], its text scrubbed of the token, a 401 or 403 becomes the permission error naming
//! what the token lacks, bodies are read into the caller's types, and lists are followed page by
//! page up to one bound. An adapter says only how one attempt goes over its client (octocrab for
//! GitHub, reqwest for GitLab) and what a 403 lacks on its forge.

use serde::de::DeserializeOwned;

use super::*;
use crate::secret::Token;

/// Items asked for per page of a list.
pub(crate) const PER_PAGE: usize = 100;
/// Pages followed at most: a list longer than `PER_PAGE * MAX_PAGES` is cut there.
pub(crate) const MAX_PAGES: usize = 10;

/// What every call of one adapter shares.
pub(crate) struct Endpoint<'a> {
    /// The repository (GitHub `owner/name`) or project (GitLab id or path) messages name.
    pub repo: &'a str,
    /// The credential kept out of every message.
    pub token: &'a Token,
    pub retry: &'a RetryPolicy,
}

/// One forge's REST API as the adapters call it.
pub(crate) trait Rest: Sync {
    fn endpoint(&self) -> Endpoint<'_>;
    /// One attempt of `method path` with a JSON body, over the adapter's client: the answer, or
    /// why none came (not yet scrubbed).
    fn attempt(
        &self,
        method: &http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> impl Future<Output = Result<RawResponse, String>> + Send;
    /// What the token lacks, named the way this forge's settings name it, when `op` got a 403.
    fn lacks(&self, op: &str, raw: &RawResponse) -> String;

    fn ctx(&self, op: &'static str, number: Option<u64>) -> Ctx<'_> {
        Ctx {
            repo: self.endpoint().repo,
            op,
            number,
        }
    }

    fn scrub(&self, text: &str) -> String {
        crate::secret::redact(text, &[self.endpoint().token])
    }

    /// One call with retries; returns any non-transient answer for the caller to judge, except
    /// 401/403 which always become a permission error naming what the token lacks.
    async fn call(
        &self,
        ctx: &Ctx<'_>,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<RawResponse, ForgeError> {
        let raw = send(self.endpoint().retry, ctx, || async {
            let mut raw = self
                .attempt(&method, path, body.as_ref())
                .await
                .map_err(|e| self.scrub(&e))?;
            raw.body = self.scrub(&String::from_utf8_lossy(&raw.body)).into_bytes();
            Ok(raw)
        })
        .await?;
        match raw.status {
            401 => Err(ctx.permission(&raw, "a valid token (it was rejected)".into())),
            403 => Err(ctx.permission(&raw, self.lacks(ctx.op, &raw))),
            _ => Ok(raw),
        }
    }

    /// `GET path`: a 2xx answer read as `T` (see [`Ctx::expect_ok`] for the others).
    async fn get<T: DeserializeOwned>(&self, ctx: &Ctx<'_>, path: &str) -> Result<T, ForgeError> {
        let raw = self.call(ctx, http::Method::GET, path, None).await?;
        ctx.expect_ok(&raw)?;
        ctx.parse(&raw)
    }

    /// `GET path` of something that may not exist: `None` on 404, else as [`Rest::get`] (even
    /// on a call about a request, where `get` would say the request is not found).
    async fn get_if_found<T: DeserializeOwned>(
        &self,
        ctx: &Ctx<'_>,
        path: &str,
    ) -> Result<Option<T>, ForgeError> {
        let raw = self.call(ctx, http::Method::GET, path, None).await?;
        match raw.status {
            404 => Ok(None),
            s if (200..300).contains(&s) => ctx.parse(&raw).map(Some),
            _ => Err(ctx.api(&raw)),
        }
    }

    /// Send `method path` with `body` and accept any 2xx answer.
    async fn send_ok(
        &self,
        ctx: &Ctx<'_>,
        method: http::Method,
        path: &str,
        body: serde_json::Value,
    ) -> Result<RawResponse, ForgeError> {
        let raw = self.call(ctx, method, path, Some(body)).await?;
        ctx.expect_ok(&raw)?;
        Ok(raw)
    }

    /// Every item of a list, in the order the pages give them. `path_of` gets the paging query
    /// (`per_page=…&page=…`) to put in the path; a short page is the last.
    async fn pages<T: DeserializeOwned>(
        &self,
        ctx: &Ctx<'_>,
        path_of: impl Fn(&str) -> String,
    ) -> Result<Vec<T>, ForgeError> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let batch: Vec<T> = self
                .get(ctx, &path_of(&format!("per_page={PER_PAGE}&page={page}")))
                .await?;
            let n = batch.len();
            out.extend(batch);
            if n < PER_PAGE {
                break;
            }
        }
        Ok(out)
    }
}
