//! Error classes: the one mapping from every failure s3ferry can meet (configuration, transport,
//! TLS, HTTP status, S3 error code, protocol violation, local I/O, integrity) to what it means
//! for the operator — fix the configuration, rerun, or look at the data — and so to the exit
//! code. Everything here is pure and table-tested; the README's exit-code table is its contract.

use serde::Serialize;

use crate::report::exit::Exit;

/// What a failure means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// The configuration or command line is wrong: nothing will work until it is fixed
    /// (exit 2). Found before any request where possible.
    Config,
    /// The source directory or the bucket does not exist (exit 3).
    Missing,
    /// Running again later can succeed: network, timeouts, throttling, 5xx, a file that
    /// changed while it was read (exit 5).
    Temporary,
    /// Running again will fail the same way: access denied, a server that breaks the S3
    /// protocol, an untrusted certificate, an unreadable source file, a corrupt source blob
    /// (exit 6).
    Permanent,
    /// Bytes did not arrive as sent, after every retry (exit 5: a rerun sends them again).
    Integrity,
}

impl Class {
    /// The exit code of a run that failed, as a whole, with this class.
    pub fn exit(self) -> Exit {
        match self {
            Class::Config => Exit::Usage,
            Class::Missing => Exit::DirNotFound,
            Class::Temporary | Class::Integrity => Exit::Temporary,
            Class::Permanent => Exit::NoRetry,
        }
    }

    /// Whether a rerun, with nothing changed, could succeed.
    pub fn is_temporary(self) -> bool {
        matches!(self, Class::Temporary | Class::Integrity)
    }
}

/// Error messages kept for the report. A run that fails a million times should not need a
/// million messages' worth of memory; the log has every one.
pub const ERRORS_KEPT: usize = 1000;

/// The file errors of a run, by whether a rerun could get past them, with the first
/// [`ERRORS_KEPT`] messages for the report (every one is logged).
#[derive(Debug, Default, Serialize)]
pub struct Tally {
    pub errors_temporary: u64,
    pub errors_permanent: u64,
    pub errors: Vec<String>,
}

impl Tally {
    pub fn count(&self) -> u64 {
        self.errors_temporary + self.errors_permanent
    }

    /// Log one error and count it.
    pub fn add(&mut self, class: Class, message: String) {
        tracing::error!("{message}");
        if class.is_temporary() {
            self.errors_temporary += 1;
        } else {
            self.errors_permanent += 1;
        }
        if self.errors.len() < ERRORS_KEPT {
            self.errors.push(message);
        }
    }

    /// The exit code these errors call for, if any.
    pub fn exit(&self) -> Exit {
        exit_for_file_errors(self.errors_temporary, self.errors_permanent)
    }
}

/// What went wrong below HTTP, as the error classes need to know it (the HTTP client
/// in `crate::s3::http` reports its failures in these terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// A connect or idle timeout fired.
    Timeout,
    /// The connection failed or broke (refused, reset, closed mid-response, DNS).
    Broken,
    /// The server's certificate was rejected by the trust store.
    Certificate,
    /// The endpoint speaks plain HTTP where https was configured.
    WrongScheme,
    /// The answer is not HTTP at all (a TLS port reached with http://, or a broken server).
    NotHttp,
}

/// A failure below HTTP.
pub fn of_transport(kind: TransportKind) -> Class {
    match kind {
        TransportKind::Timeout | TransportKind::Broken => Class::Temporary,
        TransportKind::WrongScheme => Class::Config,
        TransportKind::Certificate | TransportKind::NotHttp => Class::Permanent,
    }
}

/// An S3 error answer: its HTTP status and, when the body had one, its error code.
pub fn of_http(status: u16, code: &str) -> Class {
    match code {
        "NoSuchBucket" => return Class::Missing,
        "SlowDown"
        | "RequestTimeout"
        | "InternalError"
        | "ServiceUnavailable"
        | "RequestTimeTooSkewed"
        | "OperationAborted"
        | "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequests" => return Class::Temporary,
        "BadDigest" | "InvalidDigest" => return Class::Integrity,
        "AccessDenied"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "AllAccessDisabled"
        | "AccountProblem"
        | "InvalidBucketName"
        | "MethodNotAllowed"
        | "NotImplemented"
        | "InvalidRequest"
        | "InvalidArgument"
        | "EntityTooLarge"
        | "EntityTooSmall"
        | "KeyTooLongError"
        | "InvalidPart"
        | "InvalidPartOrder"
        | "NoSuchUpload"
        | "NoSuchKey"
        | "PreconditionFailed"
        | "InvalidObjectState" => {
            return Class::Permanent;
        }
        _ => {}
    }
    match status {
        408 | 429 => Class::Temporary,
        500..=599 if status != 501 => Class::Temporary,
        _ => Class::Permanent,
    }
}

/// A local I/O failure reading the source.
pub fn of_io(kind: std::io::ErrorKind) -> Class {
    use std::io::ErrorKind as K;
    match kind {
        // Gone between the walk and the read: the tree is changing under us.
        K::NotFound | K::Interrupted | K::WouldBlock | K::TimedOut => Class::Temporary,
        _ => Class::Permanent,
    }
}

/// A file that changed (size, mtime, or shorter than walked) while it was read: always
/// temporary, whichever check noticed first.
pub const SOURCE_CHANGED: Class = Class::Temporary;

/// The server answered, but not as S3 must: a listing that loops or goes backwards, a
/// truncated page without a token, a body that is not the expected XML.
pub const PROTOCOL: Class = Class::Permanent;

/// The exit code of a run whose only problems were per-file errors, counted by whether a
/// rerun could fix them.
pub fn exit_for_file_errors(temporary: u64, permanent: u64) -> Exit {
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
    use std::io::ErrorKind as K;

    #[test]
    fn http_table() {
        use Class::*;
        let cases: &[(u16, &str, Class)] = &[
            (404, "NoSuchBucket", Missing),
            (403, "AccessDenied", Permanent),
            (403, "InvalidAccessKeyId", Permanent),
            (403, "SignatureDoesNotMatch", Permanent),
            (403, "", Permanent),
            (403, "RequestTimeTooSkewed", Temporary),
            (400, "BadDigest", Integrity),
            (400, "InvalidDigest", Integrity),
            (400, "InvalidArgument", Permanent),
            (400, "RequestTimeout", Temporary),
            (400, "", Permanent),
            (404, "NoSuchKey", Permanent),
            (404, "NoSuchUpload", Permanent),
            (404, "", Permanent),
            (408, "", Temporary),
            (409, "OperationAborted", Temporary),
            (429, "", Temporary),
            (500, "", Temporary),
            (500, "InternalError", Temporary),
            (501, "", Permanent),
            (501, "NotImplemented", Permanent),
            (502, "", Temporary),
            (503, "SlowDown", Temporary),
            (503, "", Temporary),
            (504, "", Temporary),
            (200, "", Permanent),
        ];
        for &(status, code, want) in cases {
            assert_eq!(of_http(status, code), want, "{status} {code:?}");
        }
    }

    #[test]
    fn transport_table() {
        assert_eq!(of_transport(TransportKind::Timeout), Class::Temporary);
        assert_eq!(of_transport(TransportKind::Broken), Class::Temporary);
        assert_eq!(of_transport(TransportKind::WrongScheme), Class::Config);
        assert_eq!(of_transport(TransportKind::Certificate), Class::Permanent);
        assert_eq!(of_transport(TransportKind::NotHttp), Class::Permanent);
    }

    #[test]
    fn io_table() {
        assert_eq!(of_io(K::NotFound), Class::Temporary);
        assert_eq!(of_io(K::PermissionDenied), Class::Permanent);
        assert_eq!(of_io(K::Other), Class::Permanent);
        assert_eq!(SOURCE_CHANGED, Class::Temporary);
        assert_eq!(PROTOCOL, Class::Permanent);
    }

    #[test]
    fn exits() {
        assert_eq!(Class::Config.exit() as u8, 2);
        assert_eq!(Class::Missing.exit() as u8, 3);
        assert_eq!(Class::Temporary.exit() as u8, 5);
        assert_eq!(Class::Integrity.exit() as u8, 5);
        assert_eq!(Class::Permanent.exit() as u8, 6);
        let cases = [
            (0, 0, Exit::Success),
            (3, 0, Exit::Temporary),
            (0, 2, Exit::NoRetry),
            (1, 1, Exit::Uncategorized),
        ];
        for (t, p, want) in cases {
            assert_eq!(
                exit_for_file_errors(t, p),
                want,
                "temporary={t} permanent={p}"
            );
        }
    }
}
