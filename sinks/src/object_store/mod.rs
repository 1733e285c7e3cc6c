//! Object storage: where published Parquet files go after the local disk.
//!
//! The persister publishes each file whole under
//! `DATA_DIR/<table>/date=YYYY-MM-DD/hour=HH/<file>.parquet`. With a sink URL
//! (`s3://bucket/prefix`, `gs://…`, `az://…`, `file:///…`), the
//! [`Uploader`] copies every such file to the same relative key under the URL's
//! prefix, so the store holds exactly the local layout and the query engine can
//! list it the same way. The local data dir is the spool: a file stays on disk
//! until the store has confirmed it, which is also what makes uploads resume
//! after a restart (whatever is still on disk, unmarked, is still to go).
//!
//! [`StoreLocation`] is the parsed URL: an [`ObjectStore`] client built by
//! `object_store::parse_url_opts` with the configuration keys of that store's
//! usual environment variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`,
//! `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, …), plus the prefix.
//! It never shows credentials: its `Display` is the URL without user info or
//! query string.

pub mod upload;

use std::path::Path as FsPath;
use std::sync::Arc;

use ::object_store::ObjectStore;
use ::object_store::path::Path as StorePath;
use url::Url;

pub use upload::{AfterUpload, SpoolBudget, UploadError, UploadOptions, UploadStats, Uploader};

/// Why a sink URL could not be turned into a store client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The text is not a URL (and not a usable local path).
    #[error("{text:?} is not a store URL (s3://, gs://, az://, file://) or local path: {reason}")]
    BadUrl {
        /// What was given.
        text: String,
        /// What was wrong with it.
        reason: String,
    },
    /// object_store could not build a client for the URL (unknown scheme,
    /// missing bucket, bad configuration value).
    #[error("cannot open object store {url}: {source}")]
    Open {
        /// The URL, without credentials.
        url: String,
        /// What object_store said.
        source: ::object_store::Error,
    },
}

/// A parsed sink URL: the store client and the prefix inside it.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    store: Arc<dyn ObjectStore>,
    /// `scheme://authority/`, the key DataFusion registers the store under.
    root: Url,
    prefix: StorePath,
}

impl StoreLocation {
    /// Parses `text`, a URL (`s3://bucket/prefix`, `gs://…`, `az://…`,
    /// `file:///dir`) or a local directory path, with credentials and
    /// settings from the environment.
    pub fn parse(text: &str) -> Result<StoreLocation, StoreError> {
        // Every variable is offered; each builder picks the keys it knows
        // (e.g. `aws_region`, `google_bucket`) and ignores the rest.
        let env = std::env::vars().map(|(k, v)| (k.to_ascii_lowercase(), v));
        Self::parse_with_options(text, env)
    }

    /// Like [`StoreLocation::parse`], with explicit configuration keys
    /// (object_store's names, e.g. `aws_endpoint`, `aws_allow_http`) instead
    /// of the environment.
    pub fn parse_with_options<I, K, V>(text: &str, options: I) -> Result<StoreLocation, StoreError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let url = to_url(text)?;
        let (store, prefix) =
            ::object_store::parse_url_opts(&url, options).map_err(|source| StoreError::Open {
                url: redact(&url),
                source,
            })?;
        Ok(StoreLocation {
            store: Arc::from(store),
            root: root_of(&url),
            prefix,
        })
    }

    /// A location over an already built client, e.g. an `AmazonS3` with a
    /// custom endpoint; `root` is its `scheme://authority/` URL.
    pub fn new(store: Arc<dyn ObjectStore>, root: Url, prefix: StorePath) -> StoreLocation {
        StoreLocation {
            store,
            root: root_of(&root),
            prefix,
        }
    }

    /// The store client.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// `scheme://authority/` (e.g. `s3://bucket/`): what DataFusion's object
    /// store registry keys this store by.
    pub fn root_url(&self) -> &Url {
        &self.root
    }

    /// The prefix inside the store (empty for a bucket's root).
    pub fn prefix(&self) -> &StorePath {
        &self.prefix
    }

    /// The key of `relative` (`/`-separated, e.g. `t/date=…/hour=…/f.parquet`)
    /// under the prefix.
    pub fn key(&self, relative: &str) -> StorePath {
        let mut parts: Vec<::object_store::path::PathPart<'static>> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string().into())
            .collect();
        parts.extend(
            relative
                .split('/')
                .filter(|p| !p.is_empty())
                .map(|p| ::object_store::path::PathPart::from(p.to_string())),
        );
        StorePath::from_iter(parts)
    }

    /// The URL of directory `relative` under the prefix, ending in `/` (what a
    /// DataFusion listing table is given).
    pub fn directory_url(&self, relative: &str) -> String {
        let key = self.key(relative);
        if key.as_ref().is_empty() {
            self.root.to_string()
        } else {
            format!("{}{}/", self.root, key)
        }
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.root, self.prefix)
    }
}

/// `text` as a URL; a bare path becomes an absolute `file://` URL.
fn to_url(text: &str) -> Result<Url, StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        text: redact_text(text),
        reason,
    };
    if text.contains("://") {
        return Url::parse(text).map_err(|e| bad(e.to_string()));
    }
    let absolute = std::path::absolute(FsPath::new(text)).map_err(|e| bad(e.to_string()))?;
    Url::from_directory_path(&absolute).map_err(|()| bad("not an absolute path".into()))
}

/// `scheme://authority/` of `url`.
fn root_of(url: &Url) -> Url {
    let mut root = url.clone();
    root.set_path("/");
    root.set_query(None);
    root.set_fragment(None);
    let _ = root.set_username("");
    let _ = root.set_password(None);
    root
}

/// `url` without user info, query or fragment (where signed URLs and
/// inline credentials live), for messages.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

fn redact_text(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) => redact(&url),
        Err(_) => {
            let text = text.split(['?', '#']).next().unwrap_or_default();
            // Drop `user:password@` by hand, as the URL parser gave up.
            match text.split_once("://") {
                Some((scheme, rest)) => {
                    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                    let host = authority.rsplit('@').next().unwrap_or_default();
                    format!("{scheme}://{host}{path}")
                }
                None => text.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_with_explicit_options_and_keys_follow_the_layout() {
        let location = StoreLocation::parse_with_options(
            "s3://lake/sluice/prod",
            [
                ("aws_region", "us-east-1"),
                ("aws_access_key_id", "AKIA"),
                ("aws_secret_access_key", "s"),
            ],
        )
        .expect("parse");
        assert_eq!(location.root_url().as_str(), "s3://lake/");
        assert_eq!(location.prefix().as_ref(), "sluice/prod");
        assert_eq!(
            location
                .key("es_process_events/date=2024-01-01/hour=00/a.parquet")
                .as_ref(),
            "sluice/prod/es_process_events/date=2024-01-01/hour=00/a.parquet"
        );
        assert_eq!(
            location.directory_url("es_process_events"),
            "s3://lake/sluice/prod/es_process_events/"
        );
        assert_eq!(location.to_string(), "s3://lake/sluice/prod");
    }

    #[test]
    fn a_local_path_is_a_file_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().to_str().expect("utf-8");
        let location = StoreLocation::parse(text).expect("parse");
        assert_eq!(location.root_url().as_str(), "file:///");
        assert!(location.directory_url("t").ends_with("/t/"));
    }

    #[test]
    fn errors_do_not_show_credentials() {
        let err = StoreLocation::parse_with_options(
            "s3://user:hunter2@/x?X-Amz-Signature=secret",
            std::iter::empty::<(&str, &str)>(),
        )
        .expect_err("no bucket");
        let shown = err.to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("secret"),
            "{shown}"
        );
        let err = StoreLocation::parse("nope://x").expect_err("unknown scheme");
        assert!(err.to_string().contains("nope://x"), "{err}");
    }
}
