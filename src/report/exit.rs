//! Process exit codes, numbered like rclone's `lib/exitcode` so that Jobs and scripts written for
//! rclone keep working. This is the single place that maps an outcome to a number; nothing else
//! calls `std::process::exit`. Which failure gets which code is decided in [`crate::report::class`].

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
    /// `--max-transfer` stopped the run.
    TransferExceeded = 8,
    /// `--error-on-no-transfer` was given and nothing was transferred.
    NoFilesTransferred = 9,
    /// `--max-duration` stopped the run.
    DurationExceeded = 10,
}

impl Exit {
    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }

    /// What the code means, in a few words (the README's table, for the termination message).
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Uncategorized => "differences or mixed errors",
            Exit::Usage => "usage or configuration error",
            Exit::DirNotFound => "source or bucket not found",
            Exit::FileNotFound => "file not found",
            Exit::Temporary => "temporary errors: a rerun should succeed",
            Exit::NoRetry => "permanent errors: fix before rerunning",
            Exit::Fatal => "fatal: deletes refused",
            Exit::TransferExceeded => "--max-transfer reached",
            Exit::NoFilesTransferred => "nothing transferred (--error-on-no-transfer)",
            Exit::DurationExceeded => "--max-duration reached",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_rclones() {
        assert_eq!(Exit::Usage as u8, 2);
        assert_eq!(Exit::DirNotFound as u8, 3);
        assert_eq!(Exit::Temporary as u8, 5);
        assert_eq!(Exit::NoRetry as u8, 6);
        assert_eq!(Exit::Fatal as u8, 7);
        assert_eq!(Exit::NoFilesTransferred as u8, 9);
    }
}
