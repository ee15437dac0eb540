//! Building the client: credentials (registered for redaction as they resolve), the HTTP
//! stack, retries and timeouts, path style, the checksum policy, and the interceptor that
//! counts retry attempts.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::SharedCredentialsProvider;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    retry::RetryConfig, timeout::TimeoutConfig,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::config::remote::{Credentials, S3Settings, Secret};

use super::error::find_transport;
use super::{http, timeout};
use crate::report::requests::{RequestCounts, bump};

/// Counts the SDK's retry attempts, for progress lines and reports, and logs each at INFO
/// with what went wrong: a fault the retry cured is not an error of the run.
#[derive(Debug)]
struct CountRetries(Arc<RequestCounts>);

/// Why the previous attempt of an operation failed, kept for the retry's log line.
#[derive(Debug, Clone)]
struct LastFailure(String);

impl aws_smithy_types::config_bag::Storable for LastFailure {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl Intercept for CountRetries {
    fn name(&self) -> &'static str {
        "s3ferry-count-retries"
    }

    fn read_before_attempt(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempts = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        if attempts > 1 {
            bump(&self.0.retries);
            let operation = cfg
                .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
                .map_or("request", |m| m.name());
            let why = cfg
                .load::<LastFailure>()
                .map_or("it failed", |f| f.0.as_str());
            tracing::info!(
                "retrying {operation} {} (attempt {attempts}): {why}",
                context.request().uri()
            );
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Err(e)) = context.output_or_error() {
            let why = match (find_transport(e), context.response()) {
                (Some(t), _) => t.message,
                (None, Some(r)) => format!("HTTP {}", r.status().as_u16()),
                (None, None) => "no answer".into(),
            };
            cfg.interceptor_state().store_put(LastFailure(why));
        }
        Ok(())
    }
}

/// How the client is built, beyond the remote's settings.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub http: http::HttpOptions,
    /// Attempts per request (the SDK retries transport errors, 5xx and throttling with jitter).
    pub max_attempts: u32,
    /// Path style from `--path-style` (overrides the remote).
    pub path_style: Option<bool>,
}

/// Credentials from the default chain (profiles, web identity, metadata), registered with
/// [`crate::report::redact`] as they are resolved, so no log line can show them.
#[derive(Debug)]
struct Registering(SharedCredentialsProvider);

impl aws_credential_types::provider::ProvideCredentials for Registering {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let c = self.0.provide_credentials().await?;
            crate::report::redact::register_credentials(
                c.access_key_id(),
                c.secret_access_key(),
                c.session_token(),
            );
            Ok(c)
        })
    }
}

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP stack's settings (a CA bundle, a proxy) are wrong.
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error("no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile")]
    NoCredentials,
}

/// Build a client for the settings.
///
/// `counts` receives the SDK's retry attempts; pass the same value to [`Store::new`](super::Store::new).
pub async fn build_client(
    settings: &S3Settings,
    opts: &ClientOptions,
    counts: Arc<RequestCounts>,
) -> Result<Client, ClientError> {
    let http = http::build(&opts.http)?;
    let mut region = settings.region.clone().filter(|r| !r.is_empty());
    let mut endpoint = settings.endpoint.clone();
    let credentials = match settings
        .credentials
        .clone()
        .unwrap_or(Credentials::DefaultChain)
    {
        Credentials::Static {
            access_key_id,
            secret_access_key,
            session_token,
        } => static_credentials(access_key_id, secret_access_key, session_token),
        Credentials::DefaultChain => {
            default_chain(settings, &http, &mut region, &mut endpoint).await?
        }
    };
    let region = S3Settings {
        region,
        ..Default::default()
    }
    .signing_region();
    let path_style = opts.path_style.unwrap_or_else(|| settings.use_path_style());
    let mut b = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .http_client(http)
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .interceptor(CountRetries(counts))
        .force_path_style(path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(opts.max_attempts.max(1))
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(10)),
        );
    if let Some(d) = timeout::ceiling(opts.http.idle_timeout, 0) {
        b = b.timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(d)
                .build(),
        );
    }
    if let Some(ep) = endpoint {
        b = b.endpoint_url(ep);
    }
    Ok(Client::from_conf(b.build()))
}

/// Keys given in the configuration, registered for redaction first.
fn static_credentials(
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
) -> SharedCredentialsProvider {
    crate::report::redact::register_credentials(
        &access_key_id,
        secret_access_key.expose(),
        session_token.as_ref().map(|t| t.expose()),
    );
    SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
        access_key_id,
        secret_access_key.expose(),
        session_token.map(|t| t.expose().to_string()),
        None,
        "s3ferry",
    ))
}

/// The AWS default chain (environment, profile, web identity, metadata), or the named
/// profile, registered for redaction as it resolves. Where the settings have no region or no
/// endpoint, the chain's (or the profile's) fill them in.
async fn default_chain(
    settings: &S3Settings,
    http: &SharedHttpClient,
    region: &mut Option<String>,
    endpoint: &mut Option<String>,
) -> Result<SharedCredentialsProvider, ClientError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http.clone());
    if let Some(p) = &settings.profile {
        loader = loader.profile_name(p);
    }
    if region.is_none() && endpoint.is_some() {
        // An explicit endpoint needs no region from instance metadata: take the
        // profile's, if any, and sign us-east-1 otherwise. Nothing is probed.
        let mut profile = aws_config::profile::ProfileFileRegionProvider::builder();
        if let Some(p) = &settings.profile {
            profile = profile.profile_name(p);
        }
        use aws_config::meta::region::ProvideRegion;
        *region = Some(
            profile
                .build()
                .region()
                .await
                .map_or_else(|| "us-east-1".to_string(), |r| r.to_string()),
        );
    }
    if let Some(r) = region.as_ref() {
        loader = loader.region(Region::new(r.clone()));
    }
    let sdk = loader.load().await;
    if region.is_none() {
        *region = sdk.region().map(|r| r.to_string());
    }
    if endpoint.is_none() {
        *endpoint = sdk.endpoint_url().map(String::from);
    }
    let chain = match &settings.profile {
        // As the AWS CLI: a profile named on the command line wins over keys in the
        // environment, which come first in the default chain.
        Some(p) => SharedCredentialsProvider::new(
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .configure(
                    &aws_config::provider_config::ProviderConfig::without_region()
                        .with_http_client(http.clone()),
                )
                .profile_name(p)
                .build(),
        ),
        None => sdk
            .credentials_provider()
            .ok_or(ClientError::NoCredentials)?,
    };
    Ok(SharedCredentialsProvider::new(Registering(chain)))
}
