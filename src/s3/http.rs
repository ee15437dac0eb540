//! The HTTP client under the S3 SDK: hyper with rustls (ring), one connection pool sized to our
//! concurrency, TCP_NODELAY, and a trust store we control.
//!
//! We build it ourselves because the SDK's default client cannot express two things operators
//! need: extra trusted roots from both `--ca-cert` and `AWS_CA_BUNDLE` on top of the system
//! roots, and `--no-check-certificate` (chain not verified, handshake signatures still checked).
//! Errors from here never contain request URLs, headers or bodies; a failure is turned into a
//! [`TransportError`] with a one-line message naming the endpoint, and a kind that the error
//! classes ([`crate::report::class`]) map to an exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::connect::capture_connection;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};

use super::timeout::{TimedOut, TimeoutConnector, endpoint_of};
use crate::report::class::TransportKind;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// TLS and pool settings.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// PEM bundles whose certificates are trusted in addition to the system roots.
    pub extra_roots: Vec<PathBuf>,
    /// Do not verify the server's certificate chain or name (`--no-check-certificate`).
    pub insecure: bool,
    /// Idle connections kept per host; set to the number of requests we run at once.
    pub max_idle_per_host: usize,
    /// `--contimeout`: how long a TCP connect may take (`None`: no limit).
    pub connect_timeout: Option<Duration>,
    /// `--timeout`: how long a connection may move no byte in either direction while a
    /// request waits on it (`None`: no limit).
    pub idle_timeout: Option<Duration>,
    /// `--bwlimit`, shared by every connection of the client.
    pub bwlimit: Option<Arc<crate::s3::bwlimit::Limiter>>,
}

/// A transport failure with a one-line message that names the endpoint.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub kind: TransportKind,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("CA bundle {path}: {message}: pass a PEM file of CA certificates")]
    CaBundle { path: PathBuf, message: String },
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Load every certificate of a PEM bundle.
pub fn load_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let err = |message: String| HttpError::CaBundle {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificates found".into()));
    }
    Ok(certs)
}

/// Build the rustls client configuration.
pub fn tls_config(opts: &HttpOptions) -> Result<rustls::ClientConfig, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for path in &opts.extra_roots {
        let (added, _ignored) = roots.add_parsable_certificates(load_pem_certs(path)?);
        if added == 0 {
            return Err(HttpError::CaBundle {
                path: path.clone(),
                message: "no usable CA certificate".into(),
            });
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?;
    if roots.is_empty() && !opts.insecure {
        // Fine for an http:// endpoint; every https handshake would fail, so say why up front.
        tracing::warn!(
            "no trusted CA certificates found: https endpoints will fail; install a CA bundle or pass --ca-cert FILE"
        );
    }
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    if opts.insecure {
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(NoChainCheck(provider)));
    }
    Ok(config)
}

/// Build the SDK's HTTP client.
pub fn build(opts: &HttpOptions) -> Result<SharedHttpClient, HttpError> {
    let tls = tls_config(opts)?;
    let mut tcp = TcpConnector::new_with_resolver(super::dns::Dns::system());
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_keepalive(Some(Duration::from_secs(30)));
    let tcp = TimeoutConnector::new(
        tcp,
        opts.connect_timeout,
        opts.idle_timeout,
        opts.bwlimit.clone(),
    );
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    let client = HyperClient::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(opts.max_idle_per_host.max(1))
        .build(https);
    Ok(SharedHttpClient::new(Client {
        connector: SharedHttpConnector::new(Connector { client }),
    }))
}

type Https = hyper_rustls::HttpsConnector<TimeoutConnector>;

#[derive(Clone, Debug)]
struct Connector {
    client: HyperClient<Https, SdkBody>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        // Let the SDK close a connection that failed with a transient error, rather than
        // hand it to the next request.
        let captured = capture_connection(&mut request);
        if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
            smithy.set_connection_retriever(move || {
                captured.connection_metadata().as_ref()?;
                let conn = captured.clone();
                Some(
                    ConnectionMetadata::builder()
                        .proxied(false)
                        .poison_fn(move || {
                            if let Some(c) = conn.connection_metadata().as_ref() {
                                c.poison();
                            }
                        })
                        .build(),
                )
            });
        }
        let endpoint = endpoint_of(request.uri());
        let client = self.client.clone();
        let multipart_call = request
            .uri()
            .query()
            .is_some_and(|q| q.contains("uploadId="))
            && matches!(*request.method(), http::Method::GET | http::Method::POST);
        HttpConnectorFuture::new(async move {
            let response = client
                .request(request)
                .await
                .map_err(|e| connector_error(&endpoint, &e))?;
            let response = if multipart_call && response.status() == http::StatusCode::OK {
                let (mut parts, body) = response.into_parts();
                let bytes = http_body_util::BodyExt::collect(body)
                    .await
                    .map_err(|e| connector_error(&endpoint, &e))?
                    .to_bytes();
                let bytes = fix_result_root(bytes);
                parts.headers.insert(
                    http::header::CONTENT_LENGTH,
                    http::HeaderValue::from(bytes.len()),
                );
                http::Response::from_parts(parts, SdkBody::from(bytes))
            } else {
                response.map(SdkBody::from_body_1_x)
            };
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Turn a failure of the HTTP client into the SDK's error, with our one-line message: a
/// timeout or a broken connection is retried; a rejected certificate or the wrong scheme is
/// not (it would fail again the same way).
fn connector_error(endpoint: &str, e: &(dyn std::error::Error + 'static)) -> ConnectorError {
    let t = transport_error(endpoint, e);
    match t.kind {
        TransportKind::Timeout => ConnectorError::timeout(Box::new(t)),
        TransportKind::Broken => ConnectorError::io(Box::new(t)),
        TransportKind::Certificate | TransportKind::WrongScheme | TransportKind::NotHttp => {
            ConnectorError::user(Box::new(t))
        }
    }
}

/// Classify a failure of the HTTP client and say what it means in one line.
pub fn transport_error(endpoint: &str, e: &(dyn std::error::Error + 'static)) -> TransportError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<TransportError>() {
            return t.clone();
        }
        if let Some(t) = c.downcast_ref::<TimedOut>() {
            return TransportError {
                kind: TransportKind::Timeout,
                message: t.to_string(),
            };
        }
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(why) => TransportError {
                    kind: TransportKind::Certificate,
                    message: format!(
                        "{endpoint}: the server's TLS certificate is not trusted ({why:?}): pass its CA with --ca-cert FILE"
                    ),
                },
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                    TransportError {
                        kind: TransportKind::WrongScheme,
                        message: format!(
                            "{endpoint}: the server did not answer TLS (plain HTTP?): use an http:// endpoint, or the server's https port"
                        ),
                    }
                }
                other => TransportError {
                    kind: TransportKind::Broken,
                    message: format!("{endpoint}: TLS failed: {other}"),
                },
            };
        }
        if let Some(h) = c.downcast_ref::<hyper::Error>()
            && h.is_parse()
        {
            return TransportError {
                kind: TransportKind::NotHttp,
                message: format!(
                    "{endpoint}: the answer is not HTTP (a TLS port? then use an https:// endpoint)"
                ),
            };
        }
        innermost = c.to_string();
        // io::Error hides its payload from `source()`; look inside it explicitly.
        cause = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    TransportError {
        kind: TransportKind::Broken,
        message: format!("{endpoint}: {innermost}"),
    }
}

/// Some S3-compatible servers (moto among them) name the root element of the ListParts and
/// CompleteMultipartUpload responses `…Response` instead of S3's `…Result`, which the SDK's
/// strict parser rejects although the content is the same. Rename it; nothing else changes.
pub fn fix_result_root(body: bytes::Bytes) -> bytes::Bytes {
    const ROOTS: [(&str, &str); 2] = [
        ("ListPartsResponse", "ListPartsResult"),
        (
            "CompleteMultipartUploadResponse",
            "CompleteMultipartUploadResult",
        ),
    ];
    let Ok(text) = std::str::from_utf8(&body) else {
        return body;
    };
    for (wrong, right) in ROOTS {
        let open = format!("<{wrong}");
        let close = format!("</{wrong}>");
        if let (Some(_), Some(_)) = (text.find(&open), text.rfind(&close)) {
            let fixed = text
                .replacen(&open, &format!("<{right}"), 1)
                .replace(&close, &format!("</{right}>"));
            return bytes::Bytes::from(fixed);
        }
    }
    body
}

#[derive(Debug)]
struct Client {
    connector: SharedHttpConnector,
}

impl HttpClient for Client {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector.clone()
    }
}

/// `--no-check-certificate`: accept any chain and name, but still verify that the server holds
/// the key of the certificate it sent.
#[derive(Debug)]
struct NoChainCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoChainCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_roots_are_renamed_only_when_wrong() {
        let wrong = bytes::Bytes::from_static(
            b"<?xml version=\"1.0\"?>\n<ListPartsResponse xmlns=\"x\"><Part/></ListPartsResponse>",
        );
        let fixed = fix_result_root(wrong);
        assert_eq!(
            &fixed[..],
            &b"<?xml version=\"1.0\"?>\n<ListPartsResult xmlns=\"x\"><Part/></ListPartsResult>"[..]
        );
        let right = bytes::Bytes::from_static(
            b"<CompleteMultipartUploadResult><ETag>e</ETag></CompleteMultipartUploadResult>",
        );
        assert_eq!(fix_result_root(right.clone()), right);
        let error = bytes::Bytes::from_static(b"<Error><Code>InternalError</Code></Error>");
        assert_eq!(fix_result_root(error.clone()), error);
    }

    #[test]
    fn bad_bundles_are_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ca.pem");
        std::fs::write(&p, "not a pem").unwrap();
        let e = load_pem_certs(&p).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("PEM"), "{e}");
        let e = load_pem_certs(&d.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn system_bundle_as_extra_roots_works() {
        // Build machines export AWS_CA_BUNDLE pointing at the system bundle: that must be fine.
        let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if system.exists() {
            let opts = HttpOptions {
                extra_roots: vec![system.to_path_buf()],
                ..Default::default()
            };
            tls_config(&opts).expect("system bundle as extra roots");
        }
    }
}
