//! rclone's flags that s3ferry takes without effect (said once, with why), those it refuses
//! because they would weaken what it promises (with the reason and what to use instead), the
//! ones that do not apply at all, and the one line an unknown flag gets. An rclone Job's
//! arguments keep working, and none of them is silently ignored.

use clap::Args;

/// rclone flags that change nothing in s3ferry (accepted, logged once at INFO with why), and
/// those that would weaken what it promises (refused with the reason and the alternative).
/// Hidden from `--help`; docs/commands.md lists them.
#[derive(Debug, Args, Clone)]
pub struct CompatFlags {
    #[arg(long, global = true, hide = true)]
    pub fast_list: bool,
    #[arg(long, global = true, hide = true, value_name = "SIZE")]
    pub buffer_size: Option<String>,
    #[arg(long, global = true, hide = true)]
    pub use_mmap: bool,
    #[arg(long, global = true, hide = true, value_name = "N")]
    pub multi_thread_streams: Option<String>,
    #[arg(long, global = true, hide = true, value_name = "SIZE")]
    pub multi_thread_cutoff: Option<String>,
    #[arg(long, global = true, hide = true)]
    pub track_renames: bool,
    #[arg(long, global = true, hide = true)]
    pub check_first: bool,
    #[arg(long, global = true, hide = true)]
    pub ignore_errors: bool,
    #[arg(long, global = true, hide = true)]
    pub s3_disable_checksum: bool,
    #[arg(long, global = true, hide = true)]
    pub delete_before: bool,
    #[arg(long, global = true, hide = true)]
    pub delete_during: bool,
    #[arg(long, global = true, hide = true)]
    pub ignore_checksum: bool,
    #[arg(short = 'I', long, global = true, hide = true)]
    pub ignore_times: bool,
}

/// A flag and what s3ferry says about it.
pub type FlagNote = (&'static str, &'static str);

/// The accepted and refused compatibility flags that were given: (flag, why it has no effect)
/// and (flag, why it is refused and what to use instead).
pub fn compat(c: &CompatFlags) -> (Vec<FlagNote>, Vec<FlagNote>) {
    let no_effect: [(bool, &str, &str); 8] = [
        (
            c.fast_list,
            "--fast-list",
            "the listing is already one parallel pass over the bucket",
        ),
        (
            c.buffer_size.is_some(),
            "--buffer-size",
            "read buffers come from --max-buffer-memory",
        ),
        (
            c.use_mmap,
            "--use-mmap",
            "read buffers are always anonymous mappings, returned at once",
        ),
        (
            c.multi_thread_streams.is_some(),
            "--multi-thread-streams",
            "large files go in parallel parts (--s3-upload-concurrency)",
        ),
        (
            c.multi_thread_cutoff.is_some(),
            "--multi-thread-cutoff",
            "large files go in parallel parts above --s3-upload-cutoff",
        ),
        (
            c.track_renames,
            "--track-renames",
            "S3 has no rename; a renamed file is uploaded and the old object deleted",
        ),
        (
            c.check_first,
            "--check-first",
            "the plan is decided from one listing before each file is sent",
        ),
        (
            c.ignore_times,
            "--ignore-times",
            "use --checksum to compare content, or delete the objects to resend",
        ),
    ];
    let refused: [(bool, &str, &str); 4] = [
        (
            c.ignore_errors,
            "--ignore-errors",
            "it deletes after errors; s3ferry deletes only after a run without errors: fix the errors and rerun",
        ),
        (
            c.s3_disable_checksum,
            "--s3-disable-checksum",
            "every upload is proven by its MD5; there is nothing to gain by sending none",
        ),
        (
            c.delete_before || c.delete_during,
            "--delete-before/--delete-during",
            "s3ferry deletes only after every transfer succeeded: use --delete-after (the default)",
        ),
        (
            c.ignore_checksum,
            "--ignore-checksum",
            "every upload is checked against its MD5 and nothing counts as done without it",
        ),
    ];
    (
        no_effect
            .into_iter()
            .filter(|x| x.0)
            .map(|x| (x.1, x.2))
            .collect(),
        refused
            .into_iter()
            .filter(|x| x.0)
            .map(|x| (x.1, x.2))
            .collect(),
    )
}

/// rclone flags that do not apply to s3ferry at all, with why.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "--backup-dir",
        "s3ferry does not keep replaced objects; enable bucket versioning instead",
    ),
    (
        "--suffix",
        "s3ferry does not keep replaced objects; enable bucket versioning instead",
    ),
    (
        "--compare-dest",
        "s3ferry compares with one destination only",
    ),
    ("--copy-dest", "s3ferry compares with one destination only"),
    ("--files-from", "select files with --include/--filter-from"),
    (
        "--immutable",
        "content-addressed registry data is never rewritten; the skip rule keeps it so",
    ),
    ("--inplace", "objects are written whole or not at all"),
    (
        "--max-backlog",
        "the plan is bounded by --max-buffer-memory and a fixed queue",
    ),
    (
        "--order-by",
        "registry mode orders blobs before links; otherwise files go in key order",
    ),
    (
        "--s3-versions",
        "s3ferry works on the current version of each object",
    ),
    (
        "--s3-version-at",
        "s3ferry works on the current version of each object",
    ),
    ("--vfs-cache-mode", "s3ferry has no mount"),
    (
        "--rc",
        "s3ferry has no remote control; use --report and the log",
    ),
    (
        "--dump",
        "use -vvv for the S3 library's debug logs (secrets are hidden)",
    ),
    (
        "--create-empty-src-dirs",
        "S3 has no directories; s3ferry writes no directory markers",
    ),
    (
        "--links",
        "use --copy-links to upload what symlinks point to",
    ),
];

/// One line for an unknown flag: rclone's flags that do not apply say why; anything else
/// names the nearest s3ferry flag, if one is near.
pub fn unknown_flag(flag: &str, suggestion: Option<&str>) -> String {
    let name = flag.split('=').next().unwrap_or(flag);
    if let Some((_, why)) = NOT_APPLICABLE.iter().find(|(f, _)| *f == name) {
        return format!("rclone's {name} does not apply to s3ferry: {why}");
    }
    match suggestion {
        Some(s) => format!("unknown flag {name}: did you mean {s}? (s3ferry --help lists them)"),
        None => format!("unknown flag {name}: s3ferry --help lists the flags it takes"),
    }
}
