//! The AWS SDK plumbing that AwsKms and the S3 snapshot storage share: where and as whom
//! they call (region, endpoint, credentials given or from the usual chain, an assumed
//! role, bounded retries, timeouts), and the private tokio runtime that lets synchronous
//! callers drive the async SDK.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
// The credential types are the SDK's, re-exported by every service crate alike.
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use zeroize::Zeroizing;

/// Access keys given explicitly instead of the default chain. Never printed.
pub struct StaticCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// A session token, for temporary credentials.
    pub session_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The role atrest assumes before calling, as Atlas assumes the customer's role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRole {
    /// `arn:aws:iam::ACCOUNT:role/NAME`.
    pub role_arn: String,
    /// The external id the role's trust policy requires.
    pub external_id: Option<String>,
    /// Shown in CloudTrail as the assumed-role session.
    pub session_name: String,
}

/// Where and as whom an AWS client calls.
#[derive(Debug)]
pub struct AwsConfig {
    /// The region.
    pub region: String,
    /// Another endpoint than AWS's (an emulator, a VPC endpoint, an S3-compatible store);
    /// also used for STS.
    pub endpoint: Option<String>,
    /// `None`: the usual chain (environment, profile, SSO, web identity, container, IMDS).
    pub credentials: Option<StaticCredentials>,
    /// Assume this role with the credentials above.
    pub assume_role: Option<AssumeRole>,
    /// Attempts per call, the first included; throttling, timeouts and 5xx are retried
    /// with exponential backoff and jitter.
    pub max_attempts: u32,
    /// Time allowed for one attempt.
    pub attempt_timeout: Duration,
}

impl AwsConfig {
    /// AWS in `region`, with the usual credential chain, 4 attempts per call and 5 seconds
    /// an attempt (what a KMS call needs; object transfers want longer).
    pub fn new(region: &str) -> Self {
        AwsConfig {
            region: region.to_string(),
            endpoint: None,
            credentials: None,
            assume_role: None,
            max_attempts: 4,
            attempt_timeout: Duration::from_secs(5),
        }
    }

    /// How the config reads in messages: region, endpoint and role, never a secret.
    pub(crate) fn describe(&self) -> String {
        format!(
            "region {}, endpoint {}{}",
            self.region,
            self.endpoint.as_deref().unwrap_or("AWS"),
            self.assume_role
                .as_ref()
                .map(|r| format!(", role {}", r.role_arn))
                .unwrap_or_default()
        )
    }
}

/// A small tokio runtime of a client's own, so that its caller needs none (and may be
/// inside another one). Clones share it; the last one shuts it down without blocking.
#[derive(Clone)]
pub(crate) struct SdkRuntime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner(Option<tokio::runtime::Runtime>);

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        // A runtime dropped inside another runtime's thread panics; this never blocks.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl SdkRuntime {
    /// Starts a one-worker runtime whose thread is called `name`.
    pub(crate) fn start(name: &str) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(SdkRuntime {
            inner: Arc::new(RuntimeInner(Some(runtime))),
        })
    }

    /// Runs `future` to completion on the runtime; `None` if the runtime stopped first.
    pub(crate) fn block_on<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let runtime = self.inner.0.as_ref()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().ok()
    }

    /// Loads the SDK's configuration for `config` (credentials, region, endpoint,
    /// retries, timeouts, the assumed role's provider); `None` if the runtime stopped.
    pub(crate) fn load(&self, config: AwsConfig) -> Option<aws_config::SdkConfig> {
        self.block_on(load_sdk_config(config))
    }
}

async fn load_sdk_config(config: AwsConfig) -> aws_config::SdkConfig {
    let retry = RetryConfig::standard()
        .with_max_attempts(config.max_attempts.max(1))
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(2));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.attempt_timeout.min(Duration::from_secs(3)))
        .operation_attempt_timeout(config.attempt_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(c) = &config.credentials {
        loader = loader.credentials_provider(Credentials::new(
            &c.access_key_id,
            c.secret_access_key.as_str(),
            c.session_token.as_ref().map(|t| t.to_string()),
            None,
            "atrest",
        ));
    }
    let base = loader.load().await;
    match config.assume_role {
        None => base,
        Some(role) => {
            let mut provider = AssumeRoleProvider::builder(role.role_arn)
                .session_name(role.session_name)
                .configure(&base);
            if let Some(id) = role.external_id {
                provider = provider.external_id(id);
            }
            let provider = provider.build().await;
            base.into_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider))
                .build()
        }
    }
}

/// Each error in the chain, outermost first, without the Debug dump of the last.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}
