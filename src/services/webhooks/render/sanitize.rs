//! Output safety: escaping for the HTML the renderers build, and the filter that reduces a
//! user-supplied `html` to the tags and attributes the Matrix spec permits in
//! `org.matrix.custom.html` (client-server API, m.room.message msgtypes, "HTML formatting").

/// Tags kept by [`sanitize`]; every other tag is dropped and its text kept.
const ALLOWED_TAGS: &[&str] = &[
    "font",
    "del",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "p",
    "a",
    "ul",
    "ol",
    "sup",
    "sub",
    "li",
    "b",
    "i",
    "u",
    "strong",
    "em",
    "s",
    "strike",
    "code",
    "hr",
    "br",
    "div",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "caption",
    "pre",
    "span",
    "img",
    "details",
    "summary",
];

/// Tags dropped together with everything inside them.
const DROPPED_WITH_CONTENT: &[&str] = &[
    "script", "style", "title", "head", "textarea", "iframe", "object", "noscript", "template",
    "svg", "math", "mx-reply",
];

/// Elements without content or end tag.
const VOID_TAGS: &[&str] = &["br", "hr", "img"];

/// Link schemes the spec permits in `a href`.
const LINK_SCHEMES: &[&str] = &["http", "https", "ftp", "mailto", "magnet"];

/// Nesting depth kept; deeper start tags are dropped (the spec suggests clients cap at 100).
const MAX_DEPTH: usize = 100;

/// Escapes text for an HTML text node.
pub(super) fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    crate::util::push_html_escaped(&mut out, text, false);
    out
}

/// Escapes text for a double-quoted HTML attribute value.
pub(super) fn escape_attr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    crate::util::push_html_escaped(&mut out, text, true);
    out
}

/// Whether `url` may be a link target: one of the schemes the spec permits, compared without case.
pub(super) fn is_allowed_link(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once(':') else {
        return false;
    };
    !rest.is_empty()
        && !url.chars().any(char::is_control)
        && LINK_SCHEMES
            .iter()
            .any(|allowed| scheme.eq_ignore_ascii_case(allowed))
}

/// Reduces `html` to the Matrix allow-list: allowed tags keep their permitted attributes
/// (values checked), other tags are dropped and their text kept, `script`, `style` and the like
/// are dropped with their content, every open tag is closed, stray text is escaped.
pub(super) fn sanitize(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut open: Vec<&'static str> = Vec::new();
    let mut tokens = Tokenizer::new(html);
    while let Some(token) = tokens.next_token() {
        match token {
            Token::Text(text) => push_text_keeping_entities(&mut out, text),
            Token::Start { name, attrs } => {
                if DROPPED_WITH_CONTENT.contains(&name.as_str()) {
                    tokens.skip_past_end_tag(&name);
                    continue;
                }
                let Some(tag) = ALLOWED_TAGS.iter().copied().find(|t| *t == name) else {
                    continue;
                };
                let void = VOID_TAGS.contains(&tag);
                if !void && open.len() >= MAX_DEPTH {
                    continue;
                }
                if tag == "img" && !attrs.iter().any(|(k, v)| k == "src" && is_mxc(v)) {
                    continue;
                }
                out.push('<');
                out.push_str(tag);
                for (key, value) in &attrs {
                    if let Some(value) = allowed_attribute(tag, key, value) {
                        out.push(' ');
                        out.push_str(key);
                        out.push_str("=\"");
                        out.push_str(&escape_attr(&value));
                        out.push('"');
                    }
                }
                out.push('>');
                if !void {
                    open.push(tag);
                }
            }
            Token::End(name) => {
                if let Some(at) = open.iter().rposition(|t| *t == name) {
                    for tag in open.drain(at..).rev() {
                        push_end_tag(&mut out, tag);
                    }
                }
            }
            Token::Ignored => {}
        }
    }
    for tag in open.into_iter().rev() {
        push_end_tag(&mut out, tag);
    }
    out
}

fn push_end_tag(out: &mut String, tag: &str) {
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

fn is_mxc(src: &str) -> bool {
    src.strip_prefix("mxc://").is_some_and(|rest| {
        rest.split_once('/')
            .is_some_and(|(server, media)| !server.is_empty() && !media.is_empty())
            && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

/// The value to keep for `key` on `tag`, or None when the spec does not permit it there.
fn allowed_attribute(tag: &str, key: &str, value: &str) -> Option<String> {
    let keep = match (tag, key) {
        ("a", "href") => is_allowed_link(value.trim()),
        ("a", "target" | "name") => true,
        ("font", "color" | "data-mx-color" | "data-mx-bg-color")
        | ("span", "data-mx-color" | "data-mx-bg-color") => is_hex_colour(value),
        ("span", "data-mx-spoiler" | "data-mx-maths") | ("div", "data-mx-maths") => true,
        ("img", "src") => is_mxc(value),
        ("img", "alt" | "title") => true,
        ("img", "width" | "height") => is_small_number(value),
        ("ol", "start") => value.parse::<i32>().is_ok(),
        ("code", "class") => is_language_class(value),
        _ => false,
    };
    keep.then(|| if key == "href" { value.trim() } else { value }.to_owned())
}

/// `#rrggbb`, the only colour form the spec defines.
pub(super) fn is_hex_colour(value: &str) -> bool {
    value
        .strip_prefix('#')
        .is_some_and(|hex| hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_small_number(value: &str) -> bool {
    !value.is_empty() && value.len() <= 5 && value.bytes().all(|b| b.is_ascii_digit())
}

fn is_language_class(value: &str) -> bool {
    value.strip_prefix("language-").is_some_and(|lang| {
        !lang.is_empty()
            && lang
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+'))
    })
}

/// Copies text from the input: a well-formed entity stays as written, every other `&`, `<` and
/// `>` is escaped.
fn push_text_keeping_entities(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find(['&', '<', '>']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with('&') {
            let len = entity_len(tail);
            if len > 0 {
                out.push_str(&tail[..len]);
                rest = &tail[len..];
                continue;
            }
            out.push_str("&amp;");
        } else if tail.starts_with('<') {
            out.push_str("&lt;");
        } else {
            out.push_str("&gt;");
        }
        rest = &tail[1..];
    }
    out.push_str(rest);
}

/// Length of the entity (`&name;`, `&#123;`, `&#x1F;`) at the start of `s`, 0 when there is none.
fn entity_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let body_start;
    let valid: fn(u8) -> bool;
    let max;
    if bytes.get(1) == Some(&b'#') {
        if matches!(bytes.get(2), Some(b'x' | b'X')) {
            body_start = 3;
            valid = |b| b.is_ascii_hexdigit();
            max = 6;
        } else {
            body_start = 2;
            valid = |b| b.is_ascii_digit();
            max = 7;
        }
    } else {
        if !bytes.get(1).is_some_and(u8::is_ascii_alphabetic) {
            return 0;
        }
        body_start = 1;
        valid = |b| b.is_ascii_alphanumeric();
        max = 32;
    }
    let body = bytes[body_start..]
        .iter()
        .take_while(|b| valid(**b))
        .count();
    if body == 0 || body > max || bytes.get(body_start + body) != Some(&b';') {
        return 0;
    }
    body_start + body + 1
}

/// Decodes the character references a text or attribute value commonly holds: `&amp; &lt; &gt;
/// &quot; &apos; &nbsp;` and numeric ones. Other named references stay as written.
pub(super) fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let len = entity_len(tail);
        let decoded = (len > 0)
            .then(|| decode_entity(&tail[1..len - 1]))
            .flatten();
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<char> {
    let code = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
        u32::from_str_radix(hex, 16).ok()?
    } else if let Some(dec) = name.strip_prefix('#') {
        dec.parse().ok()?
    } else {
        return match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => None,
        };
    };
    char::from_u32(code).filter(|c| *c != '\0')
}

/// The text of `html` for a plain-text body: entities decoded, line breaks for `br` and block
/// elements, `• ` before list items, whitespace collapsed outside `pre`.
pub(super) fn html_to_plain(html: &str) -> String {
    let mut out = String::new();
    let mut in_pre = 0usize;
    let mut tokens = Tokenizer::new(html);
    while let Some(token) = tokens.next_token() {
        match token {
            Token::Text(text) => {
                let text = decode_entities(text);
                if in_pre > 0 {
                    out.push_str(&text);
                } else {
                    push_collapsed(&mut out, &text);
                }
            }
            Token::Start { name, attrs } => match name.as_str() {
                n if DROPPED_WITH_CONTENT.contains(&n) => tokens.skip_past_end_tag(n),
                "br" => out.push('\n'),
                "hr" => {
                    new_line(&mut out);
                    out.push_str("---\n");
                }
                "li" => {
                    new_line(&mut out);
                    out.push_str("• ");
                }
                "img" => {
                    if let Some((_, alt)) = attrs.iter().find(|(k, _)| k == "alt") {
                        out.push_str(&decode_entities(alt));
                    }
                }
                "td" | "th" => {
                    if !out.ends_with(['\n', ' ']) && !out.is_empty() {
                        out.push(' ');
                    }
                }
                n => {
                    if n == "pre" {
                        in_pre += 1;
                    }
                    if is_block(n) {
                        new_line(&mut out);
                    }
                }
            },
            Token::End(name) => {
                if name == "pre" {
                    in_pre = in_pre.saturating_sub(1);
                }
                if is_block(&name) || name == "li" {
                    new_line(&mut out);
                }
            }
            Token::Ignored => {}
        }
    }
    tidy_lines(&out)
}

fn is_block(tag: &str) -> bool {
    matches!(
        tag,
        "p" | "div"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "blockquote"
            | "pre"
            | "ul"
            | "ol"
            | "table"
            | "tr"
            | "caption"
            | "details"
            | "summary"
    )
}

fn new_line(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn push_collapsed(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_whitespace() && c != '\u{a0}' {
            if !out.is_empty() && !out.ends_with([' ', '\n']) {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

/// Trailing spaces off each line, at most one empty line in a row, no blank start or end.
fn tidy_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_owned()
}

enum Token<'a> {
    Text(&'a str),
    /// A start tag, its name lower-cased, attribute names lower-cased, values entity-decoded.
    Start {
        name: String,
        attrs: Vec<(String, String)>,
    },
    End(String),
    /// A comment, doctype, processing instruction or unterminated tag.
    Ignored,
}

/// A small HTML tokenizer: enough structure to filter tags, never a tree.
struct Tokenizer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Tokenizer<'a> {
    fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn next_token(&mut self) -> Option<Token<'a>> {
        let rest = &self.src[self.pos..];
        if rest.is_empty() {
            return None;
        }
        if !rest.starts_with('<') {
            let len = rest.find('<').unwrap_or(rest.len());
            self.pos += len;
            return Some(Token::Text(&rest[..len]));
        }
        let after = &rest[1..];
        if let Some(comment) = after.strip_prefix("!--") {
            self.pos += comment.find("-->").map_or(rest.len(), |end| 4 + end + 3);
            return Some(Token::Ignored);
        }
        if after.starts_with(['!', '?']) {
            self.pos += rest.find('>').map_or(rest.len(), |end| end + 1);
            return Some(Token::Ignored);
        }
        if let Some(end_tag) = after.strip_prefix('/')
            && end_tag.starts_with(|c: char| c.is_ascii_alphabetic())
        {
            let name_len = tag_name_len(end_tag);
            let name = end_tag[..name_len].to_ascii_lowercase();
            self.pos += rest.find('>').map_or(rest.len(), |end| end + 1);
            return Some(Token::End(name));
        }
        if !after.starts_with(|c: char| c.is_ascii_alphabetic()) {
            self.pos += 1;
            return Some(Token::Text("<"));
        }
        let name_len = tag_name_len(after);
        let name = after[..name_len].to_ascii_lowercase();
        match parse_attributes(&after[name_len..]) {
            Some((attrs, used)) => {
                self.pos += 1 + name_len + used;
                Some(Token::Start { name, attrs })
            }
            None => {
                self.pos = self.src.len();
                Some(Token::Ignored)
            }
        }
    }

    /// Moves past `</name ...>` (case-insensitive), or to the end when there is none.
    fn skip_past_end_tag(&mut self, name: &str) {
        let needle = format!("</{name}");
        let rest = &self.src.as_bytes()[self.pos..];
        let found = rest
            .windows(needle.len())
            .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
        self.pos = match found {
            Some(at) => {
                let from = self.pos + at;
                self.src[from..]
                    .find('>')
                    .map_or(self.src.len(), |end| from + end + 1)
            }
            None => self.src.len(),
        };
    }
}

fn tag_name_len(s: &str) -> usize {
    s.bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-')
        .count()
}

/// Attributes after a tag name up to and including `>`; None when the tag never ends.
fn parse_attributes(s: &str) -> Option<(Vec<(String, String)>, usize)> {
    let bytes = s.as_bytes();
    let mut attrs = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        match bytes.get(i) {
            None => return None,
            Some(b'>') => return Some((attrs, i + 1)),
            _ => {}
        }
        let name_start = i;
        i += 1;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !b"/>=".contains(&bytes[i]) {
            i += 1;
        }
        let name = s[name_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            match bytes.get(i) {
                Some(&quote @ (b'"' | b'\'')) => {
                    let end = s[i + 1..].find(quote as char)? + i + 1;
                    value = decode_entities(&s[i + 1..end]);
                    i = end + 1;
                }
                _ => {
                    let start = i;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = decode_entities(&s[start..i]);
                }
            }
        }
        attrs.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_tags_and_attributes_are_kept() {
        let html = "<p>Hi <b>bold</b> <a href=\"https://example.org/?a=1&amp;b=2\" target=\"_blank\">l</a>\
                    <ol start=\"3\"><li>x</li></ol><code class=\"language-rust\">fn</code>\
                    <font data-mx-color=\"#ff0000\">red</font><img src=\"mxc://example.org/abc\" alt=\"pic\"></p>";
        assert_eq!(sanitize(html), html);
    }

    #[test]
    fn script_and_style_are_dropped_with_their_content() {
        assert_eq!(
            sanitize("a<script>alert('<b>x</b>')</script>b<STYLE>p{}</STYLE>c"),
            "abc"
        );
        assert_eq!(sanitize("a<script>never closed"), "a");
    }

    #[test]
    fn unsafe_links_and_external_images_lose_their_attributes() {
        assert_eq!(
            sanitize("<a href=\"javascript:alert(1)\">x</a>"),
            "<a>x</a>"
        );
        assert_eq!(
            sanitize("<a href=\"java&#115;cript:alert(1)\">x</a>"),
            "<a>x</a>"
        );
        assert_eq!(sanitize("<a href=\"/relative\">x</a>"), "<a>x</a>");
        assert_eq!(
            sanitize("<a href='mailto:a@example.org'>m</a>"),
            "<a href=\"mailto:a@example.org\">m</a>"
        );
        assert_eq!(sanitize("x<img src=\"https://evil.example/t.png\">y"), "xy");
        assert_eq!(
            sanitize("<img src=mxc://s/m onerror=alert(1)>"),
            "<img src=\"mxc://s/m\">"
        );
    }

    #[test]
    fn disallowed_tags_keep_their_text_and_attributes_are_filtered() {
        assert_eq!(
            sanitize(
                "<section onclick=\"x()\"><b style=\"color:red\">t</b></section><blink>u</blink>"
            ),
            "<b>t</b>u"
        );
        assert_eq!(
            sanitize("<font color=\"red\" data-mx-color=\"#00ff00\">g</font>"),
            "<font data-mx-color=\"#00ff00\">g</font>"
        );
        assert_eq!(
            sanitize("<code class=\"x language-js\">c</code>"),
            "<code>c</code>"
        );
        assert_eq!(
            sanitize("<mx-reply><blockquote>quoted</blockquote></mx-reply>answer"),
            "answer"
        );
    }

    #[test]
    fn output_is_balanced_and_stray_characters_escaped() {
        assert_eq!(sanitize("<b><i>x</b>y</i>"), "<b><i>x</i></b>y");
        assert_eq!(sanitize("<ul><li>open"), "<ul><li>open</li></ul>");
        assert_eq!(
            sanitize("1 < 2 & 3 > 2 &amp; &copy; &#169;"),
            "1 &lt; 2 &amp; 3 &gt; 2 &amp; &copy; &#169;"
        );
        assert_eq!(
            sanitize("a<!-- <script> -->b<!DOCTYPE html>c</nope>"),
            "abc"
        );
        assert_eq!(sanitize("<b title=\"unterminated"), "");
        assert_eq!(sanitize("x<br/>y<hr />"), "x<br>y<hr>");
    }

    #[test]
    fn nesting_is_capped() {
        let deep = "<div>".repeat(150) + "x";
        let out = sanitize(&deep);
        assert_eq!(out.matches("<div>").count(), MAX_DEPTH);
        assert_eq!(out.matches("</div>").count(), MAX_DEPTH);
    }

    #[test]
    fn html_becomes_readable_plain_text() {
        let html = "<h3>Deploy</h3>\n<p>Build <b>#42</b> &amp; tests:</p><ul><li>ok</li><li>slow</li></ul>\
                    <pre>line 1\n  line 2</pre>done<br>bye<script>x</script>";
        assert_eq!(
            html_to_plain(html),
            "Deploy\nBuild #42 & tests:\n• ok\n• slow\nline 1\n  line 2\ndone\nbye"
        );
    }

    #[test]
    fn links_are_checked_by_scheme() {
        assert!(is_allowed_link("HTTPS://example.org"));
        assert!(is_allowed_link("magnet:?xt=urn:btih:abc"));
        assert!(!is_allowed_link("data:text/html,x"));
        assert!(!is_allowed_link("https:"));
        assert!(!is_allowed_link("java\nscript:x"));
    }
}
