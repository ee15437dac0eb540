//! Finding and reading `rclone.conf`, so an existing rclone Job's ConfigMap and Secret work as-is.
//!
//! The file is looked up the way rclone does it; a remote's keys come from its section and are
//! overridden by `RCLONE_CONFIG_<REMOTE>_<KEY>` environment variables (keys kept in a Secret, the
//! rest in a ConfigMap). This module only reads: it never writes or rewrites a config file, and
//! it never logs a value (values include secret keys).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A remote's raw key/value pairs and where they came from.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteSection {
    pub name: String,
    /// Key → value, keys lower-case.
    pub values: BTreeMap<String, String>,
    /// Keys that must be known: the file's, with their line numbers, and on-the-fly
    /// parameters (no line). Unknown env keys are not errors, because `RCLONE_CONFIG_A_B_…`
    /// may belong to a remote called `a-b`.
    pub file_keys: Vec<(String, Option<usize>)>,
    /// The config file used, if any.
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for RemoteSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: show keys only.
        f.debug_struct("RemoteSection")
            .field("name", &self.name)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("file", &self.file)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line that is not a section, a `key = value` or a comment. The message never holds
    /// the line's text: it may be a secret that lost its `key =`.
    #[error("config file {path} line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "config file {0} is encrypted: decrypt it (rclone config encryption remove) or pass keys by environment"
    )]
    Encrypted(PathBuf),
    #[error(
        "remote {name:?} not found in {where_}: add a [{name}] section with type = s3, or set RCLONE_CONFIG_{env}_TYPE=s3"
    )]
    NoRemote {
        name: String,
        where_: String,
        env: String,
    },
}

impl RemoteSection {
    /// A section of `type = s3` and nothing else, for remotes that no file defines (on-the-fly
    /// remotes, `s3://` URLs).
    pub fn s3(name: &str) -> RemoteSection {
        RemoteSection {
            name: name.to_string(),
            values: BTreeMap::from([("type".to_string(), "s3".to_string())]),
            file_keys: Vec::new(),
            file: None,
        }
    }

    /// Put `pairs` over the section's values (they win); `check` makes unknown keys errors
    /// (on-the-fly parameters are checked like the file's keys).
    pub fn overlay(&mut self, pairs: &[(String, String)], check: bool) {
        for (k, v) in pairs {
            self.values.insert(k.clone(), v.clone());
            if check {
                self.file_keys.push((k.clone(), None));
            }
        }
    }
}

/// Where to look for the config file, in rclone's order; the first that exists wins.
pub fn candidate_paths(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let mut out = Vec::new();
    if let Some(p) = env("RCLONE_CONFIG").filter(|s| !s.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    if let Some(x) = env("XDG_CONFIG_HOME").filter(|s| !s.is_empty()) {
        out.push(Path::new(&x).join("rclone/rclone.conf"));
    }
    if let Some(h) = env("HOME").filter(|s| !s.is_empty()) {
        out.push(Path::new(&h).join(".config/rclone/rclone.conf"));
        out.push(Path::new(&h).join(".rclone.conf"));
    }
    // Where the rclone image (and so the seed Job) mounts it; found even when running as non-root.
    out.push(PathBuf::from("/root/.config/rclone/rclone.conf"));
    out.dedup();
    out
}

/// The environment-variable form of a remote name: upper case, `-` → `_`.
pub fn env_name(remote: &str) -> String {
    remote
        .chars()
        .map(|c| {
            if c == '-' || c == '.' || c == ' ' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// Load one remote's section from the first config file found plus environment overrides.
pub fn load_remote(
    name: &str,
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    env_vars: &[(String, String)],
) -> Result<RemoteSection, ConfError> {
    let candidates = candidate_paths(explicit, env);
    let mut file = None;
    let mut values = BTreeMap::new();
    let mut file_keys = Vec::new();
    for path in &candidates {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => continue,
            Err(e) => {
                return Err(ConfError::Read {
                    path: path.clone(),
                    source: e,
                });
            }
        };
        if text.lines().any(|l| l.trim() == "RCLONE_ENCRYPT_V0:") {
            return Err(ConfError::Encrypted(path.clone()));
        }
        if let Some(section) =
            parse_section(&text, name).map_err(|(line, message)| ConfError::Parse {
                path: path.clone(),
                line,
                message,
            })?
        {
            file_keys = section
                .iter()
                .map(|(k, (_, n))| (k.clone(), Some(*n)))
                .collect();
            values = section.into_iter().map(|(k, (v, _))| (k, v)).collect();
        }
        file = Some(path.clone());
        break;
    }
    let prefix = format!("RCLONE_CONFIG_{}_", env_name(name));
    let mut from_env = false;
    for (k, v) in env_vars {
        if let Some(key) = k.strip_prefix(&prefix)
            && !key.is_empty()
        {
            values.insert(key.to_ascii_lowercase(), v.clone());
            from_env = true;
        }
    }
    if file_keys.is_empty() && !from_env {
        let where_ = match &file {
            Some(p) => p.display().to_string(),
            None => format!(
                "any config file (looked in {})",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(ConfError::NoRemote {
            name: name.to_string(),
            where_,
            env: env_name(name),
        });
    }
    Ok(RemoteSection {
        name: name.to_string(),
        values,
        file_keys,
        file,
    })
}

/// A section's keys (lower-cased) with their values and line numbers.
type Section = BTreeMap<String, (String, usize)>;

/// Parse rclone's INI dialect and return the named section, if it exists: `[name]` headers,
/// `key = value` lines (spaces around both trimmed), `#` and `;` comment lines, blank lines.
/// Any other line is an error naming its number, never its text. Keys before the first
/// section are ignored, as rclone does; a section given twice is merged, later keys winning.
fn parse_section(text: &str, name: &str) -> Result<Option<Section>, (usize, String)> {
    let mut current: Option<&str> = None;
    let mut found: Option<Section> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(section) = rest.strip_suffix(']') else {
                return Err((n, "a section header must end with `]`".into()));
            };
            let section = section.trim();
            current = Some(section);
            if section == name {
                found.get_or_insert_with(BTreeMap::new);
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err((
                n,
                "not `key = value`, a [section] or a comment: add the missing `=`".into(),
            ));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err((
                n,
                "the text before `=` is not a key name (letters, digits, `_`)".into(),
            ));
        }
        if current == Some(name)
            && let Some(section) = found.as_mut()
        {
            section.insert(key.to_ascii_lowercase(), (value.trim().to_string(), n));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "[harbor-s3]\ntype = s3\nprovider = Minio\nenv_auth = false\naccess_key_id = AKIDEXAMPLE\nsecret_access_key = s3cr3t/KEY+x==\nendpoint = http://minio.example:9000\nacl = private\n# region = us-east-1\n; another = comment\n\n[other]\ntype = local\n";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn seed_shape_parses() {
        let s = parse_section(SEED, "harbor-s3").unwrap().unwrap();
        assert_eq!(s["type"], ("s3".to_string(), 2));
        assert_eq!(s["provider"].0, "Minio");
        assert_eq!(s["secret_access_key"].0, "s3cr3t/KEY+x==");
        assert_eq!(s["endpoint"].0, "http://minio.example:9000");
        assert!(!s.contains_key("region"), "commented key must be ignored");
        assert!(!s.contains_key("another"));
        assert_eq!(s.len(), 7);
        assert!(parse_section(SEED, "missing").unwrap().is_none());
    }

    #[test]
    fn a_line_without_equals_is_named_by_number_never_shown() {
        // The classic typo: `secret_access_key` and its value split over two lines.
        let text = "[r]\ntype = s3\nsecret_access_key\n  wJalrXUtnFEMI/K7MDENG\nendpoint = x\n";
        let (line, message) = parse_section(text, "r").unwrap_err();
        assert_eq!(line, 3);
        assert!(
            !message.contains("wJalr") && !message.contains("secret"),
            "{message}"
        );
        let text = "[r]\ntype = s3\nwJalr/K7 MDENG = 1\n";
        let (line, message) = parse_section(text, "r").unwrap_err();
        assert_eq!(line, 3);
        assert!(!message.contains("wJalr"), "{message}");
        let (line, _) = parse_section("[r\ntype = s3\n", "r").unwrap_err();
        assert_eq!(line, 1);
    }

    #[test]
    fn sections_merge_and_values_may_hold_equals() {
        let text =
            "top = ignored\n[r]\ntype = s3\n[other]\nx = 1\n[r]\nsecret_access_key = a=b==\n";
        let s = parse_section(text, "r").unwrap().unwrap();
        assert_eq!(s["secret_access_key"], ("a=b==".to_string(), 7));
        assert_eq!(s.len(), 2);
        assert!(parse_section("[r]\n", "r").unwrap().unwrap().is_empty());
    }

    #[test]
    fn lookup_order() {
        let env = |k: &str| match k {
            "XDG_CONFIG_HOME" => Some("/xdg".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        let c = candidate_paths(None, &env);
        assert_eq!(c[0], PathBuf::from("/xdg/rclone/rclone.conf"));
        assert_eq!(c[1], PathBuf::from("/home/u/.config/rclone/rclone.conf"));
        assert_eq!(
            c.last().unwrap(),
            &PathBuf::from("/root/.config/rclone/rclone.conf")
        );
        let env = |k: &str| (k == "RCLONE_CONFIG").then(|| "/etc/r.conf".to_string());
        assert_eq!(
            candidate_paths(None, &env),
            vec![PathBuf::from("/etc/r.conf")]
        );
        assert_eq!(
            candidate_paths(Some(Path::new("/x.conf")), &env),
            vec![PathBuf::from("/x.conf")]
        );
    }

    #[test]
    fn env_overrides_and_env_only_remotes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rclone.conf");
        std::fs::write(&path, SEED).unwrap();
        let vars = vec![
            (
                "RCLONE_CONFIG_HARBOR_S3_SECRET_ACCESS_KEY".to_string(),
                "fromenv".to_string(),
            ),
            ("RCLONE_CONFIG_ENVONLY_TYPE".to_string(), "s3".to_string()),
        ];
        let r = load_remote("harbor-s3", Some(&path), &no_env, &vars).unwrap();
        assert_eq!(r.values["secret_access_key"], "fromenv");
        assert_eq!(r.values["access_key_id"], "AKIDEXAMPLE");
        assert!(
            !format!("{r:?}").contains("fromenv"),
            "Debug must not show values"
        );
        let r = load_remote("envonly", Some(&path), &no_env, &vars).unwrap();
        assert_eq!(r.values["type"], "s3");
        assert!(r.file_keys.is_empty());
        let err = load_remote("nope", Some(&path), &no_env, &vars).unwrap_err();
        assert!(err.to_string().contains("RCLONE_CONFIG_NOPE_TYPE"), "{err}");
    }

    #[test]
    fn encrypted_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rclone.conf");
        std::fs::write(
            &path,
            "# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\nabc",
        )
        .unwrap();
        let err = load_remote("harbor-s3", Some(&path), &no_env, &[]).unwrap_err();
        assert!(matches!(err, ConfError::Encrypted(_)), "{err}");
    }
}
