//! What a command-line location means: a local directory, an rclone remote (`REMOTE:BUCKET/PREFIX`)
//! or an `s3://BUCKET/PREFIX` URL, and the S3 settings that apply to it.
//!
//! Resolution is pure: it takes the config section and environment it is given and returns
//! settings, so every precedence rule (flags > environment > config file) is unit-tested here.
//! Secrets are wrapped so that no `Debug` or `Display` can print them.

use crate::read::checksum::ChecksumMode;
use std::path::PathBuf;

use crate::config::rclone_conf::RemoteSection;
use crate::config::units::parse_size;

/// A parsed command-line location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3(S3Path),
}

/// Where in S3, and which configuration names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Path {
    /// `Some(remote)` for `remote:bucket`, `Some(":s3")` for an on-the-fly remote
    /// (`:s3,key=value:bucket`), `None` for `s3://bucket`.
    pub remote: Option<String>,
    /// Connection-string parameters (`remote,key=value:bucket`, `:s3,key=value:bucket`): they
    /// override every other source of settings.
    pub params: Vec<(String, String)>,
    pub bucket: String,
    /// Empty, or ends with `/`; never starts with `/`.
    pub prefix: String,
}

impl S3Path {
    /// How rclone names this destination in its log lines (`S3 bucket b` or `S3 bucket b path p`).
    pub fn rclone_name(&self) -> String {
        let p = self.prefix.trim_end_matches('/');
        if p.is_empty() {
            format!("S3 bucket {}", self.bucket)
        } else {
            format!("S3 bucket {} path {p}", self.bucket)
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocationError {
    #[error("{0:?} has no bucket: write it as REMOTE:BUCKET[/PREFIX] or s3://BUCKET[/PREFIX]")]
    NoBucket(String),
    #[error("{0:?}: bucket names are 3-63 characters of a-z, 0-9, '.', '-' and '_'")]
    BadBucket(String),
    #[error(
        "{0:?}: on-the-fly remotes are written :s3,key=value,…:BUCKET[/PREFIX] (quote values holding , or : with \" or ')"
    )]
    BadConnectionString(String),
    #[error("{0:?}: only :s3 on-the-fly remotes are supported")]
    NotS3Backend(String),
}

/// Split `name,key=value,…` (the part before the path's `:`) at its first unquoted `:`;
/// rclone's quoting: a value in `"` or `'` may hold `,` and `:`, and a doubled quote stands
/// for itself. Returns the name, the parameters and the rest after the `:`.
#[allow(clippy::type_complexity)]
fn connection_string(text: &str) -> Option<(String, Vec<(String, String)>, &str)> {
    let mut fields: Vec<String> = vec![String::new()];
    let mut chars = text.char_indices().peekable();
    let mut quote: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                if chars.peek().is_some_and(|(_, n)| *n == q) {
                    chars.next();
                    fields.last_mut()?.push(q);
                } else {
                    quote = None;
                }
            }
            (Some(_), c) => fields.last_mut()?.push(c),
            (None, '"' | '\'') if fields.len() > 1 && fields.last()?.ends_with('=') => {
                quote = Some(c);
            }
            (None, ',') => fields.push(String::new()),
            (None, ':') => {
                let name = fields.remove(0);
                let params = fields
                    .into_iter()
                    .map(|f| match f.split_once('=') {
                        Some((k, v)) => (
                            k.trim().replace('-', "_").to_ascii_lowercase(),
                            v.to_string(),
                        ),
                        None => (
                            f.trim().replace('-', "_").to_ascii_lowercase(),
                            "true".to_string(),
                        ),
                    })
                    .collect::<Vec<_>>();
                if params.iter().any(|(k, _)| k.is_empty()) {
                    return None;
                }
                return Some((name, params, &text[i + 1..]));
            }
            (None, c) => fields.last_mut()?.push(c),
        }
    }
    None
}

/// Parse `s3://b/p`, `remote:b/p`, or a local path (anything else, e.g. `/data`, `./x:y`).
pub fn parse_location(text: &str) -> Result<Location, LocationError> {
    let bad = || LocationError::BadConnectionString(text.to_string());
    let local = || Ok(Location::Local(PathBuf::from(text)));
    // Which configuration names the place, its connection-string parameters, and the
    // `bucket/prefix` part.
    let (remote, params, rest) = if let Some(rest) = text.strip_prefix("s3://") {
        (None, Vec::new(), rest)
    } else if let Some(backend) = text.strip_prefix(':') {
        let (name, params, rest) = connection_string(backend).ok_or_else(bad)?;
        if name != "s3" {
            return Err(LocationError::NotS3Backend(text.to_string()));
        }
        (Some(":s3".to_string()), params, rest)
    } else if let Some((name, rest)) = text.split_once(':') {
        if name.contains(',') && !name.starts_with(['.', '/']) {
            let (name, params, rest) = connection_string(text).ok_or_else(bad)?;
            (Some(name), params, rest)
        } else if !name.is_empty()
            && !name.starts_with(['.', '/', '-', ' '])
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '+' | '@'))
        {
            (Some(name.to_string()), Vec::new(), rest)
        } else {
            return local();
        }
    } else {
        return local();
    };
    let (bucket, prefix) = split_bucket(text, rest)?;
    Ok(Location::S3(S3Path {
        remote,
        params,
        bucket,
        prefix,
    }))
}

fn split_bucket(whole: &str, rest: &str) -> Result<(String, String), LocationError> {
    let rest = rest.trim_start_matches('/');
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(LocationError::NoBucket(whole.to_string()));
    }
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    if !valid {
        return Err(LocationError::BadBucket(bucket.to_string()));
    }
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    Ok((bucket.to_string(), prefix))
}

/// A secret string: compares and clones, never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// SSE-C: the key the client gives with every request that writes or reads an object, for the
/// server to encrypt with and forget. ETags of such objects are not MD5s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseCustomer {
    /// `AES256`.
    pub algorithm: String,
    /// The key, base64 (as `x-amz-server-side-encryption-customer-key` carries it).
    pub key_base64: Secret,
    /// The MD5 of the key, base64.
    pub key_md5: String,
}

impl SseCustomer {
    /// The key as text, where it is text (as `sse_customer_key` gives it): for scrubbing it
    /// from anything written.
    pub fn raw_key(&self) -> Option<String> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.key_base64.expose())
            .ok()?;
        String::from_utf8(bytes).ok()
    }

    /// From rclone's keys: the key raw (`sse_customer_key`) or in base64
    /// (`sse_customer_key_base64`), its MD5 (`sse_customer_key_md5`, else computed) and the
    /// algorithm (`sse_customer_algorithm`, else `AES256`). `why` is the fix for a bad value.
    pub fn from_keys(
        algorithm: Option<String>,
        raw: Option<String>,
        b64: Option<String>,
        md5: Option<String>,
    ) -> Result<Option<SseCustomer>, (&'static str, String)> {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        let key: Vec<u8> = match (raw, b64) {
            (None, None) => {
                return match algorithm {
                    Some(_) => Err((
                        "sse_customer_algorithm",
                        "set sse_customer_key or sse_customer_key_base64 with it".into(),
                    )),
                    None => Ok(None),
                };
            }
            (Some(_), Some(_)) => {
                return Err((
                    "sse_customer_key",
                    "set sse_customer_key or sse_customer_key_base64, not both".into(),
                ));
            }
            (Some(raw), None) => raw.into_bytes(),
            (None, Some(b)) => STANDARD.decode(b.trim()).map_err(|_| {
                (
                    "sse_customer_key_base64",
                    "not base64: give the 32-byte key in base64".to_string(),
                )
            })?,
        };
        let algorithm = algorithm.unwrap_or_else(|| "AES256".into());
        if algorithm != "AES256" {
            return Err(("sse_customer_algorithm", "use AES256".into()));
        }
        if key.len() != 32 {
            return Err((
                "sse_customer_key",
                format!("an AES256 key is 32 bytes, not {}", key.len()),
            ));
        }
        let computed = {
            use md5::Digest;
            STANDARD.encode(md5::Md5::digest(&key))
        };
        if let Some(given) = md5
            && given.trim() != computed
        {
            return Err((
                "sse_customer_key_md5",
                "it is not the MD5 of the key: leave it out, s3ferry computes it".into(),
            ));
        }
        Ok(Some(SseCustomer {
            algorithm,
            key_base64: Secret::new(STANDARD.encode(&key)),
            key_md5: computed,
        }))
    }
}

/// Where credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Keys given in the config file, environment or Secret.
    Static {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    /// The AWS default chain: environment, profile files, web identity (IRSA), container and
    /// instance metadata.
    DefaultChain,
}

/// Everything needed to talk to one S3 destination.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Settings {
    pub provider: Option<String>,
    pub credentials: Option<Credentials>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub location_constraint: Option<String>,
    pub acl: Option<String>,
    /// `None` → decided by provider (virtual-hosted for AWS, path style for everything else).
    pub path_style: Option<bool>,
    pub no_check_bucket: bool,
    pub upload_cutoff: Option<u64>,
    pub chunk_size: Option<u64>,
    pub upload_concurrency: Option<usize>,
    pub max_upload_parts: Option<u64>,
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub storage_class: Option<String>,
    /// `checksum` (`--s3-checksum`): when uploads carry an S3 checksum.
    pub checksum: Option<ChecksumMode>,
    /// `sse_customer_*`: SSE-C.
    pub sse_customer: Option<SseCustomer>,
    /// `--profile`: the AWS profile whose credentials, region and endpoint to use (s3:// only).
    pub profile: Option<String>,
}

impl S3Settings {
    /// Path style unless the provider is one that wants virtual-hosted buckets.
    pub fn use_path_style(&self) -> bool {
        self.path_style.unwrap_or_else(|| {
            !matches!(
                self.provider
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .as_deref(),
                Some("aws" | "alibaba" | "tencentcos" | "netease")
            )
        })
    }

    /// The region to sign with: empty means us-east-1 (MinIO and Ceph often have none).
    pub fn signing_region(&self) -> String {
        self.region
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".to_string())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("remote {remote:?}: type = {ty:?} is not supported: s3ferry needs type = s3")]
    NotS3 { remote: String, ty: String },
    #[error(
        "remote {remote:?}: key {key:?} ({place}) is not supported by s3ferry: remove it (see docs/commands.md, rclone remotes)"
    )]
    UnknownKey {
        remote: String,
        key: String,
        /// `line N` of the config file, or `on-the-fly parameter`.
        place: String,
    },
    /// Never shows the value: a mistyped key may hold a secret.
    #[error("remote {remote:?}: the value of {key} is invalid: {why}")]
    BadValue {
        remote: String,
        key: String,
        why: String,
    },
    #[error(
        "{origin}: endpoint {endpoint:?} is not an http:// or https:// URL: write it as http://HOST:PORT or https://HOST"
    )]
    BadEndpoint { origin: String, endpoint: String },
    #[error(
        "remote {remote:?}: provider {provider} needs an endpoint (only AWS has a default): set endpoint = http://HOST:PORT, or --endpoint"
    )]
    NoEndpoint { remote: String, provider: String },
    #[error(
        "remote {remote:?}: env_auth = false but no access_key_id/secret_access_key: set both, or set env_auth = true"
    )]
    NoKeys { remote: String },
}

/// rclone.conf keys we honour (besides `type`).
pub const SUPPORTED_KEYS: &[&str] = &[
    "type",
    "provider",
    "env_auth",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "endpoint",
    "region",
    "location_constraint",
    "acl",
    "force_path_style",
    "no_check_bucket",
    "upload_cutoff",
    "chunk_size",
    "upload_concurrency",
    "max_upload_parts",
    "server_side_encryption",
    "sse_kms_key_id",
    "storage_class",
    "checksum",
    "sse_customer_algorithm",
    "sse_customer_key",
    "sse_customer_key_base64",
    "sse_customer_key_md5",
    "description",
];

fn parse_bool(remote: &str, key: &str, v: &str) -> Result<bool, SettingsError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "t" => Ok(true),
        "false" | "0" | "no" | "f" | "" => Ok(false),
        _ => Err(SettingsError::BadValue {
            remote: remote.into(),
            key: key.into(),
            why: "use true or false".into(),
        }),
    }
}

/// Build settings from an rclone remote section (already merged with its env overrides).
pub fn from_rclone(section: &RemoteSection) -> Result<S3Settings, SettingsError> {
    let remote = section.name.as_str();
    for (key, line) in &section.file_keys {
        if !SUPPORTED_KEYS.contains(&key.as_str()) {
            return Err(SettingsError::UnknownKey {
                remote: remote.into(),
                key: key.clone(),
                place: match line {
                    Some(n) => format!("line {n}"),
                    None => "on-the-fly parameter".into(),
                },
            });
        }
    }
    let get = |k: &str| {
        section
            .values
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let ty = get("type").unwrap_or_default();
    if ty != "s3" {
        return Err(SettingsError::NotS3 {
            remote: remote.into(),
            ty,
        });
    }
    let size = |k: &str| -> Result<Option<u64>, SettingsError> {
        get(k)
            .map(|v| {
                parse_size(&v).map_err(|_| SettingsError::BadValue {
                    remote: remote.into(),
                    key: k.into(),
                    why: "use a size such as 16Mi".into(),
                })
            })
            .transpose()
    };
    let number = |k: &str| -> Result<Option<u64>, SettingsError> {
        get(k)
            .map(|v| {
                v.parse::<u64>().map_err(|_| SettingsError::BadValue {
                    remote: remote.into(),
                    key: k.into(),
                    why: "use a whole number".into(),
                })
            })
            .transpose()
    };
    let env_auth = parse_bool(remote, "env_auth", &get("env_auth").unwrap_or_default())?;
    let credentials = match (get("access_key_id"), get("secret_access_key")) {
        (Some(id), Some(secret)) => Some(Credentials::Static {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: get("session_token").map(Secret::new),
        }),
        _ if env_auth => Some(Credentials::DefaultChain),
        _ => {
            return Err(SettingsError::NoKeys {
                remote: remote.into(),
            });
        }
    };
    let path_style = get("force_path_style")
        .map(|v| parse_bool(remote, "force_path_style", &v))
        .transpose()?;
    let no_check_bucket = parse_bool(
        remote,
        "no_check_bucket",
        &get("no_check_bucket").unwrap_or_default(),
    )?;
    Ok(S3Settings {
        provider: get("provider"),
        credentials,
        endpoint: get("endpoint").map(|e| normalise_endpoint(&e)),
        region: get("region"),
        location_constraint: get("location_constraint"),
        acl: get("acl"),
        path_style,
        no_check_bucket,
        upload_cutoff: size("upload_cutoff")?,
        chunk_size: size("chunk_size")?,
        upload_concurrency: number("upload_concurrency")?.map(|n| n.max(1) as usize),
        max_upload_parts: number("max_upload_parts")?,
        server_side_encryption: get("server_side_encryption"),
        sse_kms_key_id: get("sse_kms_key_id"),
        storage_class: get("storage_class"),
        checksum: match get("checksum") {
            None => None,
            Some(v) => Some(
                ChecksumMode::parse(&v).ok_or_else(|| SettingsError::BadValue {
                    remote: remote.into(),
                    key: "checksum".into(),
                    why: "use auto, off, crc32c, crc64nvme or sha256".into(),
                })?,
            ),
        },
        sse_customer: SseCustomer::from_keys(
            get("sse_customer_algorithm"),
            get("sse_customer_key"),
            get("sse_customer_key_base64"),
            get("sse_customer_key_md5"),
        )
        .map_err(|(key, why)| SettingsError::BadValue {
            remote: remote.into(),
            key: key.into(),
            why,
        })?,
        profile: None,
    })
}

/// The `s3://` settings from the AWS environment variables as the keys of an rclone section,
/// so that `--s3-*` flags apply to them the same way: keys when both are set (else the
/// default chain: profiles, web identity, metadata), the endpoint and the region.
pub fn aws_env_section(env: &dyn Fn(&str) -> Option<String>) -> RemoteSection {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let mut section = RemoteSection::s3("s3://");
    let values = &mut section.values;
    values.insert("env_auth".to_string(), "true".to_string());
    if let (Some(id), Some(secret)) = (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        values.insert("access_key_id".into(), id);
        values.insert("secret_access_key".into(), secret);
        if let Some(t) = get("AWS_SESSION_TOKEN") {
            values.insert("session_token".into(), t);
        }
    }
    if let Some(e) = get("AWS_ENDPOINT_URL_S3").or_else(|| get("AWS_ENDPOINT_URL")) {
        values.insert("endpoint".into(), e);
    }
    if let Some(r) = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")) {
        values.insert("region".into(), r);
    }
    section
}

impl S3Settings {
    /// Configuration mistakes that no request can fix, found before any is sent: an endpoint
    /// that is not http(s), or none for a provider that has no default. `origin` names where
    /// the settings came from, for the message.
    pub fn validate(&self, origin: &str) -> Result<(), SettingsError> {
        match &self.endpoint {
            Some(e) => {
                let scheme = e.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
                let host = e.split_once("://").map_or("", |(_, h)| h);
                if !matches!(scheme.as_deref(), Some("http" | "https")) || host.is_empty() {
                    return Err(SettingsError::BadEndpoint {
                        origin: origin.into(),
                        endpoint: e.clone(),
                    });
                }
            }
            None => {
                if let Some(p) = &self.provider
                    && !p.eq_ignore_ascii_case("aws")
                {
                    return Err(SettingsError::NoEndpoint {
                        remote: origin.into(),
                        provider: p.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// rclone accepts `host:port` without a scheme and assumes https.
pub fn normalise_endpoint(e: &str) -> String {
    let e = e.trim().trim_end_matches('/');
    if e.contains("://") {
        e.to_string()
    } else {
        format!("https://{e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn sse_c_keys_are_32_bytes_raw_or_base64_with_their_md5() {
        use base64::Engine;
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let key = "0123456789abcdef0123456789abcdef";
        let c = SseCustomer::from_keys(None, Some(key.into()), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(c.algorithm, "AES256");
        assert_eq!(c.key_base64.expose(), b64(key.as_bytes()));
        assert_eq!(c.raw_key().as_deref(), Some(key));
        let md5 = {
            use md5::Digest;
            b64(&md5::Md5::digest(key.as_bytes()))
        };
        assert_eq!(c.key_md5, md5);
        let same = SseCustomer::from_keys(None, None, Some(b64(key.as_bytes())), Some(md5));
        assert_eq!(same.unwrap().unwrap(), c);
        assert!(
            !format!("{c:?}").contains(key) && !format!("{c:?}").contains(&b64(key.as_bytes()))
        );
        for (alg, raw, b, m, bad) in [
            (None, Some("short"), None, None, "sse_customer_key"),
            (
                Some("aws:kms"),
                Some(key),
                None,
                None,
                "sse_customer_algorithm",
            ),
            (Some("AES256"), None, None, None, "sse_customer_algorithm"),
            (None, Some(key), Some("x"), None, "sse_customer_key"),
            (None, None, Some("!!"), None, "sse_customer_key_base64"),
            (None, Some(key), None, Some("AAAA"), "sse_customer_key_md5"),
        ] {
            let got = SseCustomer::from_keys(
                alg.map(String::from),
                raw.map(String::from),
                b.map(String::from),
                m.map(String::from),
            );
            assert_eq!(got.unwrap_err().0, bad);
        }
        assert_eq!(SseCustomer::from_keys(None, None, None, None), Ok(None));
    }

    fn section(pairs: &[(&str, &str)]) -> RemoteSection {
        let values: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RemoteSection {
            name: "harbor-s3".into(),
            file_keys: values.keys().cloned().zip((1..).map(Some)).collect(),
            values,
            file: None,
        }
    }

    #[test]
    fn locations() {
        let s3 = |remote: Option<&str>, bucket: &str, prefix: &str| {
            Location::S3(S3Path {
                remote: remote.map(String::from),
                params: Vec::new(),
                bucket: bucket.into(),
                prefix: prefix.into(),
            })
        };
        let cases = [
            ("harbor-s3:harbor", s3(Some("harbor-s3"), "harbor", "")),
            ("harbor-s3:harbor/", s3(Some("harbor-s3"), "harbor", "")),
            (
                "harbor-s3:harbor/a/b",
                s3(Some("harbor-s3"), "harbor", "a/b/"),
            ),
            ("s3://bkt/x/", s3(None, "bkt", "x/")),
            ("s3://bkt", s3(None, "bkt", "")),
            ("/data", Location::Local("/data".into())),
            ("./a:b", Location::Local("./a:b".into())),
            ("s:bkt1", s3(Some("s"), "bkt1", "")),
            ("relative/dir", Location::Local("relative/dir".into())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_location(text).unwrap(), want, "{text}");
        }
        assert!(matches!(
            parse_location("harbor-s3:"),
            Err(LocationError::NoBucket(_))
        ));
        assert!(matches!(
            parse_location("s3://"),
            Err(LocationError::NoBucket(_))
        ));
        assert!(matches!(
            parse_location("r2:Bad_Bucket"),
            Err(LocationError::BadBucket(_))
        ));
    }

    #[test]
    fn on_the_fly_remotes_with_rclones_quoting() {
        let Location::S3(p) = parse_location(
            ":s3,provider=Minio,endpoint='http://h:9000',acl=\"pri,\"\"vate\":bkt/a/b",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(p.remote.as_deref(), Some(":s3"));
        assert_eq!((p.bucket.as_str(), p.prefix.as_str()), ("bkt", "a/b/"));
        assert_eq!(
            p.params,
            vec![
                ("provider".to_string(), "Minio".to_string()),
                ("endpoint".to_string(), "http://h:9000".to_string()),
                ("acl".to_string(), "pri,\"vate".to_string()),
            ]
        );
        let Location::S3(p) = parse_location(":s3:bkt").unwrap() else {
            panic!()
        };
        assert!(p.params.is_empty() && p.bucket == "bkt");
        let Location::S3(p) = parse_location("harbor-s3,region=eu-1,env-auth:bkt").unwrap() else {
            panic!()
        };
        assert_eq!(p.remote.as_deref(), Some("harbor-s3"));
        assert_eq!(p.params[1], ("env_auth".to_string(), "true".to_string()));
        assert!(matches!(
            parse_location(":drive:x"),
            Err(LocationError::NotS3Backend(_))
        ));
        assert!(matches!(
            parse_location(":s3,endpoint='http://h"),
            Err(LocationError::BadConnectionString(_))
        ));
    }

    #[test]
    fn rclone_names() {
        let p = S3Path {
            remote: None,
            params: Vec::new(),
            bucket: "harbor".into(),
            prefix: String::new(),
        };
        assert_eq!(p.rclone_name(), "S3 bucket harbor");
        let p = S3Path {
            remote: None,
            params: Vec::new(),
            bucket: "harbor".into(),
            prefix: "a/b/".into(),
        };
        assert_eq!(p.rclone_name(), "S3 bucket harbor path a/b");
    }

    #[test]
    fn seed_remote() {
        let s = from_rclone(&section(&[
            ("type", "s3"),
            ("provider", "Minio"),
            ("env_auth", "false"),
            ("access_key_id", "AK"),
            ("secret_access_key", "SK"),
            ("endpoint", "http://host:9000"),
            ("acl", "private"),
        ]))
        .unwrap();
        assert_eq!(s.endpoint.as_deref(), Some("http://host:9000"));
        assert!(s.use_path_style());
        assert_eq!(s.signing_region(), "us-east-1");
        assert_eq!(s.acl.as_deref(), Some("private"));
        match &s.credentials {
            Some(Credentials::Static {
                access_key_id,
                secret_access_key,
                ..
            }) => {
                assert_eq!(access_key_id, "AK");
                assert_eq!(secret_access_key.expose(), "SK");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !format!("{s:?}").contains("SK\""),
            "secret must not be in Debug output"
        );
    }

    #[test]
    fn rclone_errors() {
        let e = from_rclone(&section(&[
            ("type", "s3"),
            ("env_auth", "true"),
            ("bogus_key", "1"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("\"bogus_key\""), "{e}");
        assert!(e.to_string().contains("line "), "{e}");
        let e = from_rclone(&section(&[("type", "drive")])).unwrap_err();
        assert!(matches!(e, SettingsError::NotS3 { .. }));
        let e = from_rclone(&section(&[("type", "s3")])).unwrap_err();
        assert!(matches!(e, SettingsError::NoKeys { .. }));
        let e = from_rclone(&section(&[
            ("type", "s3"),
            ("env_auth", "true"),
            ("chunk_size", "huge"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("chunk_size"), "{e}");
        assert!(
            !e.to_string().contains("huge"),
            "values are never shown: {e}"
        );
    }

    #[test]
    fn rclone_values() {
        let s = from_rclone(&section(&[
            ("type", "s3"),
            ("provider", "AWS"),
            ("env_auth", "true"),
            ("region", "eu-west-1"),
            ("chunk_size", "16Mi"),
            ("upload_cutoff", "100M"),
            ("upload_concurrency", "8"),
            ("max_upload_parts", "1000"),
            ("endpoint", "minio.local:9000"),
        ]))
        .unwrap();
        assert_eq!(s.credentials, Some(Credentials::DefaultChain));
        assert!(!s.use_path_style(), "AWS is virtual-hosted by default");
        assert_eq!(s.chunk_size, Some(16 << 20));
        assert_eq!(s.upload_cutoff, Some(100 << 20));
        assert_eq!(s.upload_concurrency, Some(8));
        assert_eq!(s.max_upload_parts, Some(1000));
        assert_eq!(s.endpoint.as_deref(), Some("https://minio.local:9000"));
        assert_eq!(s.signing_region(), "eu-west-1");
    }

    #[test]
    fn endpoints_are_validated_before_any_request() {
        let with = |provider: Option<&str>, endpoint: Option<&str>| S3Settings {
            provider: provider.map(String::from),
            endpoint: endpoint.map(normalise_endpoint),
            ..Default::default()
        };
        assert!(
            with(Some("Minio"), Some("http://h:9000"))
                .validate("r")
                .is_ok()
        );
        assert!(
            with(Some("Ceph"), Some("h:7480")).validate("r").is_ok(),
            "no scheme: https"
        );
        assert!(with(Some("AWS"), None).validate("r").is_ok());
        assert!(with(None, None).validate("r").is_ok());
        for bad in ["ftp://h:21", "s3://bucket", "file:///x"] {
            let e = with(Some("Minio"), Some(bad)).validate("r").unwrap_err();
            assert!(matches!(e, SettingsError::BadEndpoint { .. }), "{bad}: {e}");
        }
        let e = with(Some("Minio"), None).validate("r").unwrap_err();
        assert!(e.to_string().contains("needs an endpoint"), "{e}");
    }

    #[test]
    fn aws_env() {
        let env = |k: &str| {
            match k {
                "AWS_ACCESS_KEY_ID" => Some("A"),
                "AWS_SECRET_ACCESS_KEY" => Some("S"),
                "AWS_ENDPOINT_URL" => Some("http://generic:1"),
                "AWS_ENDPOINT_URL_S3" => Some("http://s3specific:2"),
                "AWS_DEFAULT_REGION" => Some("eu-central-1"),
                _ => None,
            }
            .map(String::from)
        };
        let from_aws_env =
            |env: &dyn Fn(&str) -> Option<String>| from_rclone(&aws_env_section(env)).unwrap();
        let s = from_aws_env(&env);
        assert_eq!(s.endpoint.as_deref(), Some("http://s3specific:2"));
        assert_eq!(s.region.as_deref(), Some("eu-central-1"));
        assert!(matches!(s.credentials, Some(Credentials::Static { .. })));
        let s = from_aws_env(&|_| None);
        assert_eq!(s.credentials, Some(Credentials::DefaultChain));
    }
}
