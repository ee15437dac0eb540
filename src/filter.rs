//! `--include` / `--exclude` with rclone's glob rules, so existing filter flags select the same files.
//!
//! Rules: a pattern without a leading `/` matches at any depth (`*.tmp` matches `a/b/x.tmp`), a
//! leading `/` anchors it at the root, a trailing `/` matches a directory and everything in it,
//! `*` stays within one path segment and `**` crosses them. Excludes are tried before includes;
//! when any include is given, everything not included is excluded. Filters apply to the source
//! walk and to the destination listing alike, so excluded objects are never deleted.

use globset::{Glob, GlobBuilder, GlobMatcher};

#[derive(Debug, thiserror::Error)]
#[error("bad filter pattern {pattern:?}: {source}")]
pub struct FilterError {
    pattern: String,
    source: globset::Error,
}

/// Compiled filter rules.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    excludes: Vec<Rule>,
    includes: Vec<Rule>,
    /// With `--shard`, only this shard's paths.
    shard: Option<crate::shard::Shard>,
}

/// One rule compiles to one or two globs (the pattern itself and `**/pattern` when unanchored).
type Rule = Vec<GlobMatcher>;

fn compile(pattern: &str) -> Result<Rule, FilterError> {
    let mut base = pattern.to_string();
    if base.ends_with('/') {
        base.push_str("**");
    }
    let variants = match base.strip_prefix('/') {
        Some(anchored) => vec![anchored.to_string()],
        None if base.starts_with("**") => vec![base],
        None => vec![base.clone(), format!("**/{base}")],
    };
    variants
        .iter()
        .map(|p| {
            let glob: Glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| FilterError {
                    pattern: pattern.to_string(),
                    source,
                })?;
            Ok(glob.compile_matcher())
        })
        .collect()
}

impl Filter {
    pub fn new(excludes: &[String], includes: &[String]) -> Result<Filter, FilterError> {
        Ok(Filter {
            excludes: excludes
                .iter()
                .map(|p| compile(p))
                .collect::<Result<_, _>>()?,
            includes: includes
                .iter()
                .map(|p| compile(p))
                .collect::<Result<_, _>>()?,
            shard: None,
        })
    }

    /// Restrict to one shard's paths.
    pub fn with_shard(mut self, shard: Option<crate::shard::Shard>) -> Filter {
        self.shard = shard;
        self
    }

    /// Whether a relative path (with `/` separators) is selected.
    pub fn allows(&self, rel: &str) -> bool {
        if self.shard.is_some_and(|s| !s.owns(rel)) {
            return false;
        }
        if self.excludes.iter().flatten().any(|g| g.is_match(rel)) {
            return false;
        }
        self.includes.is_empty() || self.includes.iter().flatten().any(|g| g.is_match(rel))
    }
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
            (&["secret.json"], &["*.json"], "a/secret.json", false),
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
    fn bad_pattern_is_an_error() {
        let e = Filter::new(&["[".to_string()], &[]).unwrap_err();
        assert!(e.to_string().contains("\"[\""));
    }
}
