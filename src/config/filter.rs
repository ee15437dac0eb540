//! Which files a run covers: rclone's filter rules (`--include`, `--exclude`, `--filter` and
//! their `-from` files), rclone's size and age limits, or, for `s3://` destinations, the AWS
//! CLI's `--include`/`--exclude`; and the shard. Filters apply to the source walk and to the
//! destination listing alike, so excluded objects are never deleted.
//!
//! rclone's rules, as rclone applies them: every rule is a glob; a pattern without a leading
//! `/` matches at any depth (`*.tmp` matches `a/b/x.tmp`), a leading `/` anchors it at the
//! root, a trailing `/` matches a directory and everything in it, `*` stays within one path
//! segment and `**` crosses them. The rules are tried in one list, first match wins: the
//! `--include` globs, then `--include-from`, `--exclude`, `--exclude-from`, `--filter` and
//! `--filter-from` rules (`+ glob`, `- glob`, `!` to clear the list so far); when any include
//! was given, everything else is excluded; a path no rule matches is included.
//!
//! The AWS CLI's rules (`aws s3 sync`): `--include` and `--exclude` in the order given, the
//! last match wins, everything is included by default, and `*` matches across `/`; patterns
//! are relative to the source directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use globset::{Glob, GlobBuilder, GlobMatcher};

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("bad filter pattern {pattern:?}: {source}")]
    Pattern {
        pattern: String,
        source: globset::Error,
    },
    #[error("filter rule {0:?}: write `+ GLOB` to include, `- GLOB` to exclude, or `!` to clear")]
    Rule(String),
    #[error("filter file {path}: {message}")]
    File { path: PathBuf, message: String },
}

/// Whose rule syntax the include/exclude flags use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Syntax {
    /// rclone's (for `REMOTE:BUCKET` destinations).
    #[default]
    Rclone,
    /// The AWS CLI's (for `s3://` destinations).
    AwsCli,
}

/// The filters as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct FilterSpec {
    pub syntax: Syntax,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// With the AWS CLI's syntax: `(include?, glob)` in command-line order.
    pub ordered: Vec<(bool, String)>,
    pub filter: Vec<String>,
    pub include_from: Vec<PathBuf>,
    pub exclude_from: Vec<PathBuf>,
    pub filter_from: Vec<PathBuf>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    pub min_age: Option<Duration>,
    pub max_age: Option<Duration>,
    /// `--exclude-if-present`: directories holding a file of one of these names are left out.
    pub exclude_if_present: Vec<String>,
}

/// Compiled filter rules.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// `(include?, globs)`, first match wins (the syntax only decides how they are compiled
    /// and ordered).
    rules: Vec<(bool, Rule)>,
    min_size: Option<u64>,
    max_size: Option<u64>,
    /// Files modified after this are excluded (`--min-age`).
    newest: Option<SystemTime>,
    /// Files modified before this are excluded (`--max-age`).
    oldest: Option<SystemTime>,
    /// With `--shard`, only this shard's paths.
    shard: Option<crate::config::shard::Shard>,
    /// `--exclude-if-present`.
    markers: Vec<String>,
}

/// One rule compiles to one or two globs (the pattern itself and `**/pattern` when unanchored).
type Rule = Vec<GlobMatcher>;

fn glob(pattern: &str, shown: &str, literal_separator: bool) -> Result<GlobMatcher, FilterError> {
    let g: Glob = GlobBuilder::new(pattern)
        .literal_separator(literal_separator)
        .backslash_escape(true)
        .build()
        .map_err(|source| FilterError::Pattern {
            pattern: shown.to_string(),
            source,
        })?;
    Ok(g.compile_matcher())
}

fn compile_rclone(pattern: &str) -> Result<Rule, FilterError> {
    let mut base = pattern.to_string();
    if base.ends_with('/') {
        base.push_str("**");
    }
    let variants = match base.strip_prefix('/') {
        Some(anchored) => vec![anchored.to_string()],
        None if base.starts_with("**") => vec![base],
        None => vec![base.clone(), format!("**/{base}")],
    };
    variants.iter().map(|p| glob(p, pattern, true)).collect()
}

fn compile_aws(pattern: &str) -> Result<Rule, FilterError> {
    let p = pattern.trim_start_matches("./");
    Ok(vec![glob(p, pattern, false)?])
}

/// The globs of a `--include-from`/`--exclude-from`/`--filter-from` file: one per line,
/// blank lines and `#`/`;` comments skipped, spaces trimmed.
fn lines_of(path: &Path) -> Result<Vec<String>, FilterError> {
    let text = std::fs::read_to_string(path).map_err(|e| FilterError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(String::from)
        .collect())
}

impl Filter {
    /// rclone's `--exclude`/`--include` only.
    pub fn new(excludes: &[String], includes: &[String]) -> Result<Filter, FilterError> {
        Filter::from_spec(
            &FilterSpec {
                exclude: excludes.to_vec(),
                include: includes.to_vec(),
                ..Default::default()
            },
            SystemTime::now(),
        )
    }

    /// Compile the rules as rclone (or the AWS CLI) does; ages count back from `now`.
    pub fn from_spec(spec: &FilterSpec, now: SystemTime) -> Result<Filter, FilterError> {
        let mut rules = Vec::new();
        match spec.syntax {
            Syntax::AwsCli => {
                for (include, pattern) in &spec.ordered {
                    rules.push((*include, compile_aws(pattern)?));
                }
                // Last match wins: try them from the end.
                rules.reverse();
            }
            Syntax::Rclone => {
                let mut any_include = false;
                for p in &spec.include {
                    rules.push((true, compile_rclone(p)?));
                    any_include = true;
                }
                for f in &spec.include_from {
                    for p in lines_of(f)? {
                        rules.push((true, compile_rclone(&p)?));
                    }
                    any_include = true;
                }
                if any_include && (!spec.exclude.is_empty() || !spec.exclude_from.is_empty()) {
                    tracing::warn!(
                        "--include and --exclude together: includes are tried first, as rclone does; --filter rules say the order outright"
                    );
                }
                for p in &spec.exclude {
                    rules.push((false, compile_rclone(p)?));
                }
                for f in &spec.exclude_from {
                    for p in lines_of(f)? {
                        rules.push((false, compile_rclone(&p)?));
                    }
                }
                let mut filter_rules = spec.filter.clone();
                for f in &spec.filter_from {
                    filter_rules.extend(lines_of(f)?);
                }
                for r in &filter_rules {
                    if r == "!" {
                        rules.clear();
                    } else if let Some(p) = r.strip_prefix("+ ") {
                        rules.push((true, compile_rclone(p)?));
                    } else if let Some(p) = r.strip_prefix("- ") {
                        rules.push((false, compile_rclone(p)?));
                    } else {
                        return Err(FilterError::Rule(r.clone()));
                    }
                }
                if any_include {
                    rules.push((false, compile_rclone("/**")?));
                }
            }
        }
        Ok(Filter {
            rules,
            min_size: spec.min_size,
            max_size: spec.max_size,
            newest: spec.min_age.and_then(|a| now.checked_sub(a)),
            oldest: spec.max_age.and_then(|a| now.checked_sub(a)),
            shard: None,
            markers: spec.exclude_if_present.clone(),
        })
    }

    /// The names of the files whose presence leaves their directory out
    /// (`--exclude-if-present`).
    pub fn exclude_if_present(&self) -> &[String] {
        &self.markers
    }

    /// The shard alone, none of the rules: what `--delete-excluded` lists the destination
    /// with, so that what the rules leave out there is deleted (another shard's keys never
    /// are).
    pub fn shard_only(&self) -> Filter {
        Filter {
            shard: self.shard,
            ..Filter::default()
        }
    }

    /// Restrict to one shard's paths.
    pub fn with_shard(mut self, shard: Option<crate::config::shard::Shard>) -> Filter {
        self.shard = shard;
        self
    }

    /// Whether a relative path (with `/` separators) is selected by the path rules and the
    /// shard.
    pub fn allows(&self, rel: &str) -> bool {
        if self.shard.is_some_and(|s| !s.owns(rel)) {
            return false;
        }
        // First match wins (the AWS CLI's rules are stored last first); no match includes.
        self.rules
            .iter()
            .find(|(_, globs)| globs.iter().any(|g| g.is_match(rel)))
            .is_none_or(|(include, _)| *include)
    }

    /// Whether a file (or object) of this size and modification time is selected: the path
    /// rules, the shard, `--min/max-size` and `--min/max-age`.
    pub fn allows_file(&self, rel: &str, size: u64, mtime: SystemTime) -> bool {
        self.min_size.is_none_or(|m| size >= m)
            && self.max_size.is_none_or(|m| size <= m)
            && self.newest.is_none_or(|t| mtime <= t)
            && self.oldest.is_none_or(|t| mtime >= t)
            && self.allows(rel)
    }
}

/// The AWS CLI's `--include`/`--exclude` in command-line order, from the raw arguments
/// (clap keeps each flag's values apart, and their interleaving is what decides).
pub fn aws_order(args: &[String]) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        for (flag, include) in [("--include", true), ("--exclude", false)] {
            if a == flag {
                if let Some(v) = it.next() {
                    out.push((include, v.clone()));
                }
            } else if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                out.push((include, v.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(ex: &[&str], inc: &[&str]) -> Filter {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Filter::new(&s(ex), &s(inc)).unwrap()
    }

    #[test]
    fn rclone_glob_table() {
        // (excludes, includes, path, allowed)
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &[], "a/b/c", true),
            (&["*.tmp"], &[], "x.tmp", false),
            (&["*.tmp"], &[], "a/b/x.tmp", false),
            (&["*.tmp"], &[], "a/b/x.tmpl", true),
            (&["/*.tmp"], &[], "x.tmp", false),
            (&["/*.tmp"], &[], "a/x.tmp", true),
            (&["_uploads/"], &[], "repo/_uploads/id/data", false),
            (&["_uploads/"], &[], "repo/uploads/id/data", true),
            (
                &["/docker/registry/v2/repositories/**"],
                &[],
                "docker/registry/v2/repositories/x/link",
                false,
            ),
            (&["a*"], &[], "dir/abc", false),
            (&["a*"], &[], "abc/def", true),
            (&[], &["*.json"], "x/y.json", true),
            (&[], &["*.json"], "x/y.txt", false),
            // rclone tries includes before excludes.
            (&["secret.json"], &["*.json"], "a/secret.json", true),
            (&["*.txt"], &["*.json"], "a/b.txt", false),
            (&["{a,b}.txt"], &[], "q/b.txt", false),
            (&["file?.bin"], &[], "file1.bin", false),
            (&["file?.bin"], &[], "file12.bin", true),
        ];
        for (ex, inc, path, want) in cases {
            assert_eq!(
                f(ex, inc).allows(path),
                *want,
                "ex={ex:?} inc={inc:?} path={path}"
            );
        }
    }

    #[test]
    fn filter_rules_and_files_in_rclones_order() {
        let d = tempfile::tempdir().unwrap();
        let rules = d.path().join("rules.txt");
        std::fs::write(
            &rules,
            "# registry only\n- **/_uploads/**\n+ /docker/**\n; rest\n- **\n",
        )
        .unwrap();
        let spec = FilterSpec {
            filter_from: vec![rules],
            ..Default::default()
        };
        let flt = Filter::from_spec(&spec, SystemTime::now()).unwrap();
        assert!(flt.allows("docker/registry/v2/blobs/x"));
        assert!(!flt.allows("docker/registry/v2/repositories/r/_uploads/u/data"));
        assert!(!flt.allows("other/file"));
        // `!` clears what came before.
        let spec = FilterSpec {
            exclude: vec!["*.tmp".into()],
            filter: vec!["!".into(), "- *.log".into()],
            ..Default::default()
        };
        let flt = Filter::from_spec(&spec, SystemTime::now()).unwrap();
        assert!(flt.allows("a.tmp") && !flt.allows("a.log"));
        let bad = FilterSpec {
            filter: vec!["*.tmp".into()],
            ..Default::default()
        };
        assert!(matches!(
            Filter::from_spec(&bad, SystemTime::now()),
            Err(FilterError::Rule(_))
        ));
        let missing = FilterSpec {
            include_from: vec![d.path().join("nope")],
            ..Default::default()
        };
        assert!(Filter::from_spec(&missing, SystemTime::now()).is_err());
    }

    #[test]
    fn size_and_age_limits() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let spec = FilterSpec {
            min_size: Some(10),
            max_size: Some(100),
            min_age: Some(Duration::from_secs(60)),
            max_age: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        let flt = Filter::from_spec(&spec, now).unwrap();
        let ago = |s: u64| now - Duration::from_secs(s);
        assert!(flt.allows_file("f", 50, ago(600)));
        assert!(!flt.allows_file("f", 9, ago(600)), "too small");
        assert!(!flt.allows_file("f", 101, ago(600)), "too large");
        assert!(!flt.allows_file("f", 50, ago(30)), "too new for --min-age");
        assert!(
            !flt.allows_file("f", 50, ago(7200)),
            "too old for --max-age"
        );
        assert!(flt.allows_file("f", 10, ago(60)), "limits are inclusive");
    }

    #[test]
    fn aws_cli_rules_last_match_wins_and_star_crosses_slashes() {
        let args: Vec<String> = [
            "sync",
            ".",
            "s3://b",
            "--exclude",
            "*",
            "--include=docker/*",
            "--exclude",
            "*.tmp",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let spec = FilterSpec {
            syntax: Syntax::AwsCli,
            ordered: aws_order(&args),
            ..Default::default()
        };
        let flt = Filter::from_spec(&spec, SystemTime::now()).unwrap();
        assert!(flt.allows("docker/registry/v2/blobs/x"), "* crosses /");
        assert!(!flt.allows("other/x"));
        assert!(!flt.allows("docker/a.tmp"), "the later exclude wins");
        assert!(
            Filter::from_spec(
                &FilterSpec {
                    syntax: Syntax::AwsCli,
                    ..Default::default()
                },
                SystemTime::now()
            )
            .unwrap()
            .allows("x")
        );
    }

    #[test]
    fn bad_pattern_is_an_error() {
        let e = Filter::new(&["[".to_string()], &[]).unwrap_err();
        assert!(e.to_string().contains("\"[\""));
    }
}
