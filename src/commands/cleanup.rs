//! The `cleanup` command: abort incomplete multipart uploads under the prefix. They hold storage
//! (billed on AWS, kept forever on MinIO/Ceph) and nothing else ever removes them.
//!
//! Only uploads older than `--older-than` are aborted, so a sync running right now keeps its own.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::s3::{S3Error, Store, UploadInfo};

#[derive(Debug, Default, Serialize)]
pub struct CleanupSummary {
    pub found: u64,
    pub aborted: u64,
    pub kept_too_young: u64,
    pub errors: u64,
}

/// Whether an upload is old enough to abort. Unknown start times count as old.
pub fn is_stale(u: &UploadInfo, now: SystemTime, max_age: Duration) -> bool {
    match u.initiated {
        Some(t) => now.duration_since(t).unwrap_or_default() >= max_age,
        None => true,
    }
}

pub async fn run(
    store: &Store,
    max_age: Duration,
    dry_run: bool,
) -> Result<CleanupSummary, S3Error> {
    let uploads = store.list_uploads(&store.path.prefix).await?;
    let now = SystemTime::now();
    let mut s = CleanupSummary {
        found: uploads.len() as u64,
        ..Default::default()
    };
    for u in uploads {
        if !is_stale(&u, now, max_age) {
            s.kept_too_young += 1;
            tracing::info!(
                "{}: upload {} is younger than --older-than: kept",
                u.key,
                u.upload_id
            );
            continue;
        }
        if dry_run {
            tracing::warn!(
                "{}: Skipped abort of incomplete upload as --dry-run is set",
                u.key
            );
            continue;
        }
        match store.abort_multipart(&u.key, &u.upload_id).await {
            Ok(()) => {
                s.aborted += 1;
                tracing::info!("{}: aborted incomplete upload", u.key);
            }
            Err(e) => {
                s.errors += 1;
                tracing::error!("{}: {e}", u.key);
            }
        }
    }
    let line = format!(
        "{}: {} incomplete uploads found, {} aborted, {} kept (younger than {}), {} errors",
        store.path.rclone_name(),
        s.found,
        s.aborted,
        s.kept_too_young,
        humantime::format_duration(max_age),
        s.errors
    );
    tracing::warn!("{line}");
    crate::report::termination::set_outcome(line);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100_000);
        let at = |secs: u64| UploadInfo {
            key: "k".into(),
            upload_id: "u".into(),
            initiated: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            checksum: None,
        };
        let day = Duration::from_secs(86_400);
        assert!(is_stale(&at(100_000 - 86_400), now, day));
        assert!(!is_stale(&at(100_000 - 86_399), now, day));
        assert!(is_stale(&at(99_000), now, Duration::ZERO));
        let unknown = UploadInfo {
            initiated: None,
            ..at(0)
        };
        assert!(is_stale(&unknown, now, day));
    }
}
