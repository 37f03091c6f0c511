//! The headers of every media answer: `Content-Disposition` (inline only for the content types the
//! spec lists as safe to show inline, else attachment; the filename encoded per RFC 6266 / 8187 by
//! ruma's `ContentDisposition`) and the security headers that keep a browser from running it.

use ruma::http_headers::{ContentDisposition, ContentDispositionType};

/// Content types served inline (the spec's "Serving inline content" list).
const INLINE_TYPES: &[&str] = &[
    "text/css",
    "text/plain",
    "text/csv",
    "application/json",
    "application/ld+json",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

pub const CONTENT_SECURITY_POLICY: &str = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';";

/// Headers sent with every download and thumbnail.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-resource-policy", "cross-origin"),
];

/// The essence of a content type (`text/plain; charset=utf-8` → `text/plain`), lowercase.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

pub fn is_inline(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| INLINE_TYPES.contains(&essence(ct).as_str()))
}

/// The `Content-Disposition` of a download.
pub fn disposition(content_type: Option<&str>, filename: Option<&str>) -> ContentDisposition {
    let kind = if is_inline(content_type) {
        ContentDispositionType::Inline
    } else {
        ContentDispositionType::Attachment
    };
    ContentDisposition::new(kind)
        .with_filename(filename.filter(|f| !f.is_empty()).map(str::to_owned))
}

/// The `Content-Disposition` of a thumbnail: always inline (the spec requires it; thumbnails are
/// images we made), named `thumbnail.png` or `thumbnail.jpeg`.
pub fn thumbnail_disposition(content_type: &str) -> ContentDisposition {
    let extension = essence(content_type)
        .rsplit('/')
        .next()
        .unwrap_or("png")
        .to_owned();
    ContentDisposition::new(ContentDispositionType::Inline)
        .with_filename(Some(format!("thumbnail.{extension}")))
}

/// The content type to send: a stored type of the form `type/subtype[; params]` in visible
/// ASCII, else `application/octet-stream`.
pub fn content_type_header(content_type: Option<&str>) -> http::HeaderValue {
    content_type
        .filter(|ct| is_well_formed(ct))
        .and_then(|ct| http::HeaderValue::from_str(ct).ok())
        .unwrap_or_else(|| http::HeaderValue::from_static("application/octet-stream"))
}

fn is_well_formed(content_type: &str) -> bool {
    let token = |x: &str| {
        !x.is_empty()
            && x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence
        .split_once('/')
        .is_some_and(|(t, sub)| token(t) && token(sub))
        && content_type.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_types_are_inline() {
        assert!(is_inline(Some("image/png")));
        assert!(is_inline(Some("text/plain; charset=utf-8")));
        assert!(is_inline(Some("Video/MP4")));
        assert!(!is_inline(Some("text/html")));
        assert!(!is_inline(Some("image/svg+xml")));
        assert!(!is_inline(Some("application/octet-stream")));
        assert!(!is_inline(None));
    }

    #[test]
    fn filenames_are_quoted_or_encoded() {
        assert_eq!(
            disposition(Some("image/png"), Some("cat.png")).to_string(),
            "inline; filename=cat.png"
        );
        assert_eq!(
            disposition(Some("text/html"), Some("a b.html")).to_string(),
            "attachment; filename=\"a b.html\""
        );
        assert_eq!(
            disposition(Some("text/plain"), Some("q\"uote.txt")).to_string(),
            "inline; filename=\"q\\\"uote.txt\""
        );
        assert_eq!(
            disposition(Some("application/pdf"), Some("résumé.pdf")).to_string(),
            "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"
        );
        assert_eq!(disposition(None, None).to_string(), "attachment");
        assert_eq!(disposition(None, Some("")).to_string(), "attachment");
        assert_eq!(
            thumbnail_disposition("image/jpeg").to_string(),
            "inline; filename=thumbnail.jpeg"
        );
    }

    #[test]
    fn bad_content_types_become_octet_stream() {
        assert_eq!(content_type_header(Some("image/png")), "image/png");
        assert_eq!(
            content_type_header(Some("text/plain; charset=utf-8")),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type_header(Some("nonsense")),
            "application/octet-stream"
        );
        assert_eq!(
            content_type_header(Some("text/html\r\nX-Evil: 1")),
            "application/octet-stream"
        );
        assert_eq!(content_type_header(None), "application/octet-stream");
    }
}
