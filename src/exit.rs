//! Process exit codes, numbered like rclone's `lib/exitcode` so that Jobs and scripts written for
//! rclone keep working. This is the single place that maps an outcome to a number; nothing else
//! calls `std::process::exit`.

use std::process::ExitCode;

/// The documented exit codes (see README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Exit {
    /// Everything done and verified.
    Success = 0,
    /// Uncategorised error; also what `check` returns when it finds differences.
    Uncategorized = 1,
    /// Syntax or usage error: bad flag, bad config file, bad remote string.
    Usage = 2,
    /// The source directory or destination bucket does not exist.
    DirNotFound = 3,
    /// A named file does not exist (reserved: rclone's code, not produced by s3ferry).
    #[allow(dead_code)]
    FileNotFound = 4,
    /// Only temporary errors (network, 5xx, throttling): a rerun is likely to succeed.
    Temporary = 5,
    /// Only errors that a rerun will not fix (access denied, invalid names, corrupt source).
    NoRetry = 6,
    /// Fatal error: the run stopped early (for example `--max-delete` exceeded).
    Fatal = 7,
    /// A transfer limit was exceeded (reserved: rclone's `--max-transfer`, not supported).
    #[allow(dead_code)]
    TransferExceeded = 8,
    /// `--error-on-no-transfer` was given and nothing was transferred.
    NoFilesTransferred = 9,
}

impl Exit {
    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }
}

/// Exit code for a run whose only problems were per-file errors.
///
/// `temporary` and `permanent` count the errors by whether retrying could help.
pub fn for_file_errors(temporary: u64, permanent: u64) -> Exit {
    match (temporary, permanent) {
        (0, 0) => Exit::Success,
        (_, 0) => Exit::Temporary,
        (0, _) => Exit::NoRetry,
        _ => Exit::Uncategorized,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_error_table() {
        let cases = [
            (0, 0, Exit::Success),
            (3, 0, Exit::Temporary),
            (0, 2, Exit::NoRetry),
            (1, 1, Exit::Uncategorized),
        ];
        for (t, p, want) in cases {
            assert_eq!(for_file_errors(t, p), want, "temporary={t} permanent={p}");
        }
        assert_eq!(Exit::NoFilesTransferred as u8, 9);
        assert_eq!(Exit::Usage as u8, 2);
    }
}
