//! The container's termination message: how a run ended, where Kubernetes looks for it
//! (`terminationMessagePath`, `/dev/termination-log` unless the pod says otherwise), so that
//! `kubectl describe pod` and `kubectl get pod -o yaml` show each container's outcome without
//! its log.
//!
//! The file is written only where it already exists (the kubelet creates and mounts it; on a
//! workstation there is none and nothing is written), never through a symlink, and cut to the
//! 4096 bytes Kubernetes keeps. Secrets are hidden as in every log line.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::report::exit::Exit;

/// Where Kubernetes reads the message unless the pod names another path.
pub const DEFAULT_PATH: &str = "/dev/termination-log";

/// What Kubernetes keeps of a termination message.
const MOST: usize = 4096;

/// The run's summary line, once a command has one.
static OUTCOME: Mutex<Option<String>> = Mutex::new(None);

/// Record the summary line of the command that runs (the last one recorded is kept).
pub fn set_outcome(line: impl Into<String>) {
    *OUTCOME.lock().unwrap_or_else(|e| e.into_inner()) = Some(line.into());
}

fn outcome() -> Option<String> {
    OUTCOME.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The message: the summary line (if the command got that far), the error that ended the
/// run (if one did), and the exit code with its meaning.
pub fn message(exit: Exit, error: Option<&str>) -> String {
    let mut lines = Vec::new();
    if let Some(line) = outcome() {
        lines.push(line);
    }
    if let Some(e) = error {
        lines.push(format!("ERROR : {e}"));
    }
    lines.push(format!("exit {} ({})", exit as u8, exit.meaning()));
    // Each line as a log line is: secrets hidden, control characters escaped.
    let text: String = lines
        .iter()
        .map(|l| crate::report::redact::safe(l) + "\n")
        .collect();
    cut(text)
}

/// At most [`MOST`] bytes, cut at a character boundary, keeping the end (the exit line).
fn cut(text: String) -> String {
    if text.len() <= MOST {
        return text;
    }
    let mut from = text.len() - MOST;
    while !text.is_char_boundary(from) {
        from += 1;
    }
    text[from..].to_string()
}

/// Write `message(exit, error)` to `path` if that file exists. Failing to write is not the
/// run's failure: it is logged at debug level and the exit code stays.
pub fn write(path: &Path, exit: Exit, error: Option<&str>) {
    if path.as_os_str().is_empty() {
        return;
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(libc::O_NOFOLLOW);
    }
    let result = open
        .open(path)
        .and_then(|mut f| f.write_all(message(exit, error).as_bytes()));
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::debug!("termination message {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_keeps_the_end_when_cut() {
        let long = "x".repeat(5000) + "é\nexit 0 (success)\n";
        let c = cut(long);
        assert!(c.len() <= MOST);
        assert!(c.ends_with("exit 0 (success)\n"));
    }

    #[test]
    fn nothing_is_created_where_no_file_is() {
        let dir = std::env::temp_dir().join(format!("s3ferry-term-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("termination-log");
        write(&missing, Exit::Success, None);
        assert!(!missing.exists());
        std::fs::write(
            &missing,
            "old contents that are longer than the message\n".repeat(200),
        )
        .unwrap();
        write(&missing, Exit::Temporary, Some("boom"));
        let got = std::fs::read_to_string(&missing).unwrap();
        assert!(
            got.ends_with("ERROR : boom\nexit 5 (temporary errors: a rerun should succeed)\n"),
            "{got}"
        );
        #[cfg(unix)]
        {
            let link = dir.join("link");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&missing, &link).unwrap();
            write(&link, Exit::Fatal, None);
            assert_eq!(
                std::fs::read_to_string(&missing).unwrap(),
                got,
                "wrote through a symlink"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
