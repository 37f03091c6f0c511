//! Small helpers shared across layers.

use rand::{Rng, distributions::Alphanumeric};

pub fn random_string(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Percent-encodes one path segment or query value (everything but letters and digits).
pub fn encode_segment(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Appends `text` escaped for HTML: `&`, `<`, `>`, and `"` too when `quotes` (attribute values).
pub fn push_html_escaped(out: &mut String, text: &str, quotes: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if quotes => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

/// `text` escaped for HTML text and double-quoted attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_html_escaped(&mut out, text, true);
    out
}

pub fn now_ms() -> u64 {
    ruma::MilliSecondsSinceUnixEpoch::now().get().into()
}

/// Where a start-up walk over short event ids resumes after a step that read up to `last`
/// (`u64::MAX`: the walk is complete, nothing was left to read).
pub fn walk_resume_at(last: Option<u64>) -> u64 {
    match last {
        Some(short) if short < u64::MAX - 1 => short + 1,
        _ => u64::MAX,
    }
}
