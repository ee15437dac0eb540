//! What keeps secrets and forged lines out of everything s3ferry writes: every log line,
//! error message and report passes through [`scrub`] (secret keys and session tokens become
//! `***`, access key ids are masked to `AKIA…1234`) and log lines through [`escape_controls`]
//! (a file name with a newline cannot start a second record).
//!
//! Secrets are registered where credentials are resolved ([`register_secret`],
//! [`register_key_id`]); scrubbing by value, at the last moment, also covers what libraries
//! log at `-vvv` (signed headers, canonical requests) without having to trust each of them.
//!
//! Logs must stay readable whatever the credentials look like: a test setup's access key `a`
//! must not turn "Transferred" into "Tr***nsferred". So a registered value is hidden where it
//! stands as a credential, whatever its length: after a credential's label (`Credential=`,
//! `x-amz-security-token:`, `aws_secret_access_key =`, …). Elsewhere it is
//! hidden wherever it stands as a whole token (not inside a longer word), and, from
//! [`ANYWHERE`] characters on, even inside one, since a value that long is no word. Values
//! of fewer than [`AS_TOKEN`] characters ("a", "s3") are ordinary words, and are hidden only
//! after their labels.

use std::borrow::Cow;
use std::sync::RwLock;

/// (text to hide, what to show instead), longest first so that no replacement leaves part of
/// a longer secret behind.
static HIDDEN: RwLock<Vec<(String, String)>> = RwLock::new(Vec::new());

fn add(text: &str, shown: String) {
    if text.is_empty() {
        return;
    }
    let mut h = HIDDEN.write().unwrap_or_else(|e| e.into_inner());
    if h.iter().any(|(t, _)| t == text) {
        return;
    }
    h.push((text.to_string(), shown));
    h.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
}

/// Registered values at least this long are hidden wherever they occur.
pub const ANYWHERE: usize = 16;
/// Registered values at least this long (and shorter than [`ANYWHERE`]) are hidden where
/// they stand as whole tokens.
pub const AS_TOKEN: usize = 4;

/// Labels after which a credential follows (compared without case), and whether it is a key
/// id (which ends at a `/`, as in `Credential=KEY/date/region/…`).
const LABELS: &[(&str, bool)] = &[
    ("credential=", true),
    ("access_key_id", true),
    ("access-key-id", true),
    ("accesskeyid", true),
    ("secret_access_key", false),
    ("secret-access-key", false),
    ("secretaccesskey", false),
    ("secret_key", false),
    ("x-amz-security-token", false),
    ("session_token", false),
    ("sessiontoken", false),
];

/// A secret access key or session token: never shown, in any form.
pub fn register_secret(secret: &str) {
    add(secret, "***".into());
}

/// An access key id: shown only masked.
pub fn register_key_id(id: &str) {
    add(id, mask_key_id(id));
}

/// A set of credentials: the key id masked, the secret and the token hidden.
pub fn register_credentials(key_id: &str, secret: &str, token: Option<&str>) {
    register_key_id(key_id);
    register_secret(secret);
    if let Some(t) = token {
        register_secret(t);
    }
}

/// `AKIA…1234`: enough to tell keys apart, not enough to use one.
pub fn mask_key_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 12 {
        return "***".into();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// `text` with every credential hidden: the values after credentials' labels, and every
/// registered value as the module says.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let h = HIDDEN.read().unwrap_or_else(|e| e.into_inner());
    if h.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = labelled(text, &h);
    for (t, shown) in h.iter().filter(|(t, _)| t.len() >= AS_TOKEN) {
        if !out.contains(t.as_str()) {
            continue;
        }
        out = Cow::Owned(if t.len() >= ANYWHERE {
            out.replace(t.as_str(), shown)
        } else {
            replace_tokens(&out, t, shown)
        });
    }
    out
}

/// A character that continues a word: a value next to one is part of a longer token.
fn wordy(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` with `value` replaced by `shown` where it is a whole token.
fn replace_tokens(text: &str, value: &str, shown: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(value) {
        let before = rest[..i].chars().next_back().or(out.chars().next_back());
        let after = rest[i + value.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(wordy) || after.is_some_and(wordy) {
            out.push_str(value);
        } else {
            out.push_str(shown);
        }
        rest = &rest[i + value.len()..];
    }
    out.push_str(rest);
    out
}

/// `text` with each registered value that follows a credential's label shown as registered.
fn labelled<'a>(text: &'a str, hidden: &[(String, String)]) -> Cow<'a, str> {
    let lower = text.to_ascii_lowercase();
    if !LABELS.iter().any(|(l, _)| lower.contains(l)) {
        return Cow::Borrowed(text);
    }
    // (start, end, shown) of every registered value after a label.
    let mut spans: Vec<(usize, usize, &str)> = Vec::new();
    for &(label, key_id) in LABELS {
        for (at, _) in lower.match_indices(label) {
            let mut start = at + label.len();
            // Separators between a label and its value: `=`, `:`, quotes, spaces.
            while let Some(c) = text[start..].chars().next() {
                if matches!(c, '=' | ':' | '"' | '\'' | ' ' | '\t')
                    && start - (at + label.len()) < 8
                {
                    start += c.len_utf8();
                } else {
                    break;
                }
            }
            let end = text[start..]
                .find(|c: char| {
                    c.is_whitespace()
                        || matches!(
                            c,
                            '"' | '\'' | ',' | ';' | '&' | '<' | '>' | ')' | ']' | '}'
                        )
                        || (key_id && c == '/')
                })
                .map_or(text.len(), |n| start + n);
            if let Some((_, shown)) = hidden.iter().find(|(t, _)| *t == text[start..end]) {
                spans.push((start, end, shown));
            }
        }
    }
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    spans.sort();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, shown) in spans {
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(shown);
        at = end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// `text` with control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`, …), so that it stays
/// on one line and cannot drive a terminal.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Both: what a log line or a path in an output file goes through.
pub fn safe(text: &str) -> String {
    escape_controls(&scrub(text)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_and_key_ids_masked() {
        register_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        register_secret("FwoGZXIvYXdzEXAMPLETOKEN");
        register_key_id("AKIAIOSFODNN7EXAMPLE");
        let line = "Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1 secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY x-amz-security-token:FwoGZXIvYXdzEXAMPLETOKEN";
        let s = scrub(line);
        assert!(!s.contains("wJalrXUtnFEMI"), "{s}");
        assert!(!s.contains("FwoGZXIvYXdz"), "{s}");
        assert!(!s.contains("AKIAIOSFODNN7EXAMPLE"), "{s}");
        assert!(s.contains("AKIA…MPLE"), "{s}");
        assert_eq!(scrub("nothing here"), "nothing here");
        assert_eq!(mask_key_id("short"), "***");
    }

    /// Short credentials (test setups, minimal MinIO configurations) keep ordinary words
    /// whole, and are still hidden where they are credentials; middling ones are hidden as
    /// whole tokens only.
    #[test]
    fn short_credentials_leave_words_alone() {
        register_credentials("a", "s", Some("tok1"));
        let line = "Transferred 3 files, a symlink: reading s3://b";
        assert_eq!(scrub(line), line);
        let signed = "Authorization: AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/s3/aws4_request, SignedHeaders=host";
        let s = scrub(signed);
        assert!(s.contains("Credential=***/20260101"), "{s}");
        assert!(s.contains("SignedHeaders=host"), "{s}");
        let conf = "access_key_id = a\nsecret_access_key = s\nsession_token=tok1";
        assert_eq!(
            scrub(conf),
            "access_key_id = ***\nsecret_access_key = ***\nsession_token=***"
        );
        assert_eq!(
            scrub("x-amz-security-token: tok1"),
            "x-amz-security-token: ***"
        );
        assert_eq!(scrub("token tok1, stock1 tok12"), "token ***, stock1 tok12");
        // A label followed by a word that is no credential is left as it is.
        let advice = "no access_key_id/secret_access_key: set both";
        assert_eq!(scrub(advice), advice);
        assert_eq!(
            scrub("AWS_SECRET_ACCESS_KEY=\"s\" rest"),
            "AWS_SECRET_ACCESS_KEY=\"***\" rest"
        );
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(
            escape_controls("a\nb\rc\td\u{1b}[2J"),
            "a\\nb\\rc\\td\\u{1b}[2J"
        );
        assert_eq!(escape_controls("plain é"), "plain é");
        assert_eq!(safe("x\ny"), "x\\ny");
    }
}
