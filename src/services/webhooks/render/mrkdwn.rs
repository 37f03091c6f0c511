//! Slack mrkdwn to Matrix HTML and a plain-text fallback.
//!
//! Block level: ```` ``` ```` fences become `<pre><code>`, lines starting `>` (or `&gt;`) a
//! `<blockquote>` (`>>>` quotes the rest), runs of `• `/`- `/`* ` lines a `<ul>`, runs of `1. `
//! lines an `<ol>`, other lines are joined with `<br>`. Inline: `*bold*`, `_italic_`, `~strike~`,
//! `` `code` ``, `<url|label>` and `<url>` links, bare http(s) URLs, `<@U1>`/`<#C1|name>`/`<!here>`
//! as readable text. Slack's `&amp; &lt; &gt;` are decoded once; everything else is escaped.

use super::{
    Piece,
    sanitize::{decode_entities, escape_attr, escape_text, is_allowed_link},
};

/// How much of mrkdwn applies: all of it, or (Slack's `mrkdwn: false`) links and mentions only.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Style {
    Full,
    LinksOnly,
}

/// Renders Slack mrkdwn `text`.
pub(super) fn render(text: &str, style: Style) -> Piece {
    let text = text.replace("\r\n", "\n");
    let mut doc = Doc::default();
    let mut rest = text.trim();
    while style == Style::Full
        && let Some((before, code, after)) = split_fence(rest)
    {
        render_lines(before.strip_suffix('\n').unwrap_or(before), style, &mut doc);
        let code = code.strip_prefix('\n').unwrap_or(code);
        let code = decode_entities(code.strip_suffix('\n').unwrap_or(code));
        doc.block(
            format!("<pre><code>{}</code></pre>", escape_text(&code)),
            code,
        );
        rest = after.strip_prefix('\n').unwrap_or(after);
    }
    render_lines(rest, style, &mut doc);
    doc.finish()
}

/// Slack `plain_text`: entities decoded, escaped, line breaks kept.
pub(super) fn plain_text(text: &str) -> Piece {
    let plain = decode_entities(text.replace("\r\n", "\n").trim());
    Piece {
        html: escape_text(&plain).replace('\n', "<br>"),
        plain,
    }
}

/// The first ```` ```code``` ```` in `text`: what comes before, the code, what comes after.
fn split_fence(text: &str) -> Option<(&str, &str, &str)> {
    let open = text.find("```")?;
    let inner = &text[open + 3..];
    let close = inner.find("```")?;
    Some((&text[..open], &inner[..close], &inner[close + 3..]))
}

/// Rendered output built item by item: lines are separated by `<br>`, blocks stand alone.
#[derive(Default)]
struct Doc {
    html: String,
    plain: Vec<String>,
    last_was_line: bool,
}

impl Doc {
    fn line(&mut self, piece: Piece) {
        if self.last_was_line {
            self.html.push_str("<br>");
        }
        self.html.push_str(&piece.html);
        self.plain.push(piece.plain);
        self.last_was_line = true;
    }

    fn block(&mut self, html: String, plain: String) {
        self.html.push_str(&html);
        self.plain.push(plain);
        self.last_was_line = false;
    }

    fn finish(self) -> Piece {
        Piece {
            html: self.html,
            plain: self.plain.join("\n"),
        }
    }
}

enum LineKind<'a> {
    Quote(&'a str),
    QuoteRest(&'a str),
    Bullet(&'a str),
    Numbered(u32, &'a str),
    Plain(&'a str),
}

fn classify(line: &str, style: Style) -> LineKind<'_> {
    if style == Style::LinksOnly {
        return LineKind::Plain(line);
    }
    let quoted = line.strip_prefix("&gt;").or_else(|| line.strip_prefix('>'));
    if let Some(quoted) = quoted {
        if let Some(all) = quoted
            .strip_prefix("&gt;&gt;")
            .or_else(|| quoted.strip_prefix(">>"))
        {
            return LineKind::QuoteRest(all.strip_prefix(' ').unwrap_or(all));
        }
        return LineKind::Quote(quoted.strip_prefix(' ').unwrap_or(quoted));
    }
    let indented = line.trim_start();
    for marker in ["• ", "◦ ", "- ", "* "] {
        if let Some(item) = indented.strip_prefix(marker) {
            return LineKind::Bullet(item.trim_start());
        }
    }
    let digits = indented.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=9).contains(&digits)
        && let Some(item) = indented[digits..]
            .strip_prefix(". ")
            .or_else(|| indented[digits..].strip_prefix(") "))
        && let Ok(number) = indented[..digits].parse()
    {
        return LineKind::Numbered(number, item.trim_start());
    }
    LineKind::Plain(line)
}

/// Lines outside fences, grouped into quotes, lists and plain lines.
fn render_lines(text: &str, style: Style, doc: &mut Doc) {
    if text.is_empty() {
        return;
    }
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        match classify(line, style) {
            LineKind::Plain(line) => doc.line(inline(line, style)),
            LineKind::QuoteRest(first) => {
                let quoted: Vec<Piece> = std::iter::once(first)
                    .chain(lines.by_ref())
                    .map(|l| inline(l, style))
                    .collect();
                quote(doc, quoted);
            }
            LineKind::Quote(first) => {
                let mut quoted = vec![inline(first, style)];
                while let Some(LineKind::Quote(next)) = lines.peek().map(|l| classify(l, style)) {
                    quoted.push(inline(next, style));
                    lines.next();
                }
                quote(doc, quoted);
            }
            LineKind::Bullet(first) => {
                let mut items = vec![(line, inline(first, style))];
                while let Some(&next) = lines.peek()
                    && let LineKind::Bullet(item) = classify(next, style)
                {
                    items.push((next, inline(item, style)));
                    lines.next();
                }
                list(doc, "ul", None, items);
            }
            LineKind::Numbered(start, first) => {
                let mut items = vec![(line, inline(first, style))];
                while let Some(&next) = lines.peek()
                    && let LineKind::Numbered(_, item) = classify(next, style)
                {
                    items.push((next, inline(item, style)));
                    lines.next();
                }
                list(doc, "ol", Some(start).filter(|s| *s != 1), items);
            }
        }
    }
}

fn quote(doc: &mut Doc, lines: Vec<Piece>) {
    let html: Vec<String> = lines.iter().map(|p| p.html.clone()).collect();
    let plain: Vec<String> = lines
        .into_iter()
        .map(|p| format!("> {}", p.plain))
        .collect();
    doc.block(
        format!("<blockquote>{}</blockquote>", html.join("<br>")),
        plain.join("\n"),
    );
}

/// A list; the plain text keeps each line's own marker (`- a`, `2. b`) with its inline formatting
/// removed.
fn list(doc: &mut Doc, tag: &str, start: Option<u32>, items: Vec<(&str, Piece)>) {
    let mut html = match start {
        Some(start) => format!("<{tag} start=\"{start}\">"),
        None => format!("<{tag}>"),
    };
    let mut plain = Vec::with_capacity(items.len());
    for (line, piece) in items {
        html.push_str("<li>");
        html.push_str(&piece.html);
        html.push_str("</li>");
        let trimmed = line.trim_start();
        let marker_len = trimmed.find(' ').map_or(0, |space| space + 1);
        plain.push(format!("{}{}", &trimmed[..marker_len], piece.plain));
    }
    html.push_str(&format!("</{tag}>"));
    doc.block(html, plain.join("\n"));
}

/// One unit of a line before emphasis is matched.
enum Atom<'a> {
    Text(&'a str),
    /// `*`, `_` or `~`, with whether it may open or close a span.
    Marker {
        ch: u8,
        open: bool,
        close: bool,
    },
    Code(&'a str),
    Link {
        href: String,
        label: String,
    },
    Mention(String),
}

const MARKERS: [u8; 3] = [b'*', b'_', b'~'];

/// Renders one line (no newline inside).
fn inline(line: &str, style: Style) -> Piece {
    let atoms = atoms(line, style);
    let roles = match_markers(&atoms);
    let mut piece = Piece::default();
    for (atom, role) in atoms.iter().zip(roles) {
        match atom {
            Atom::Text(text) => piece.push_text(&decode_entities(text)),
            Atom::Marker { ch, .. } => {
                let tag = match ch {
                    b'*' => "b",
                    b'_' => "i",
                    _ => "del",
                };
                match role {
                    Role::Open => piece.html.push_str(&format!("<{tag}>")),
                    Role::Close => piece.html.push_str(&format!("</{tag}>")),
                    Role::Literal => piece.push_text(&(*ch as char).to_string()),
                }
            }
            Atom::Code(code) => {
                let code = decode_entities(code);
                piece
                    .html
                    .push_str(&format!("<code>{}</code>", escape_text(&code)));
                piece.plain.push_str(&code);
            }
            Atom::Link { href, label } => {
                piece.html.push_str(&format!(
                    "<a href=\"{}\">{}</a>",
                    escape_attr(href),
                    escape_text(label)
                ));
                let shown = href.strip_prefix("mailto:").unwrap_or(href);
                if label == href || label == shown {
                    piece.plain.push_str(shown);
                } else {
                    piece.plain.push_str(&format!("{label} ({shown})"));
                }
            }
            Atom::Mention(text) => piece.push_text(text),
        }
    }
    piece
}

/// Splits a line into atoms. Markers get their flanking: a marker opens when followed by a
/// non-space and not preceded by a letter or digit, closes when preceded by a non-space and not
/// followed by a letter or digit (so `snake_case` and `2*3*4` stay as written).
fn atoms(line: &str, style: Style) -> Vec<Atom<'_>> {
    let bytes = line.as_bytes();
    let mut atoms = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let found = match bytes[i] {
            b'<' => control_sequence(&line[i..]),
            b'`' if style == Style::Full => code_span(&line[i..]),
            b'h' if !line[..i].ends_with(|c: char| c.is_alphanumeric()) => bare_url(&line[i..]),
            ch if style == Style::Full && MARKERS.contains(&ch) => {
                let before = line[..i].chars().next_back();
                let after = line[i + 1..].chars().next();
                let open = after.is_some_and(|c| !c.is_whitespace())
                    && !before.is_some_and(char::is_alphanumeric);
                let close = before.is_some_and(|c| !c.is_whitespace())
                    && !after.is_some_and(char::is_alphanumeric);
                Some((Atom::Marker { ch, open, close }, 1))
            }
            _ => None,
        };
        match found {
            Some((atom, len)) => {
                if text_start < i {
                    atoms.push(Atom::Text(&line[text_start..i]));
                }
                atoms.push(atom);
                i += len;
                text_start = i;
            }
            None => i += 1,
        }
    }
    if text_start < bytes.len() {
        atoms.push(Atom::Text(&line[text_start..]));
    }
    atoms
}

/// `<...>` at the start of `s`: a link, a mention, or None (then `<` is plain text).
fn control_sequence(s: &str) -> Option<(Atom<'_>, usize)> {
    let end = s[1..].find(['>', '<'])? + 1;
    if s.as_bytes()[end] != b'>' || end == 1 {
        return None;
    }
    let inner = &s[1..end];
    let (target, label) = match inner.split_once('|') {
        Some((target, label)) => (target, Some(decode_entities(label.trim()))),
        None => (inner, None),
    };
    let label = label.filter(|l| !l.is_empty());
    let atom = if let Some(user) = target.strip_prefix('@') {
        Atom::Mention(format!(
            "@{}",
            label.as_deref().unwrap_or(user).trim_start_matches('@')
        ))
    } else if let Some(channel) = target.strip_prefix('#') {
        Atom::Mention(format!(
            "#{}",
            label.as_deref().unwrap_or(channel).trim_start_matches('#')
        ))
    } else if let Some(special) = target.strip_prefix('!') {
        let command = special.split('^').next().unwrap_or(special);
        let text = match (label, command) {
            (_, "here" | "channel" | "everyone") => format!("@{command}"),
            (Some(label), _) => label,
            (None, "subteam") => format!("@{}", special.split('^').nth(1).unwrap_or(command)),
            (None, _) => command.to_owned(),
        };
        Atom::Mention(text)
    } else {
        let href = decode_entities(target.trim());
        if !is_allowed_link(&href) {
            return None;
        }
        let label =
            label.unwrap_or_else(|| href.strip_prefix("mailto:").unwrap_or(&href).to_owned());
        Atom::Link { href, label }
    };
    Some((atom, end + 1))
}

/// `` `code` `` at the start of `s` (non-empty, on this line).
fn code_span(s: &str) -> Option<(Atom<'_>, usize)> {
    let close = s[1..].find('`')? + 1;
    (close > 1).then(|| (Atom::Code(&s[1..close]), close + 1))
}

/// A bare `http://` or `https://` URL at the start of `s`, without trailing punctuation.
fn bare_url(s: &str) -> Option<(Atom<'_>, usize)> {
    let scheme_len = if s.starts_with("https://") {
        8
    } else if s.starts_with("http://") {
        7
    } else {
        return None;
    };
    let mut len = s
        .find(|c: char| c.is_whitespace() || c == '<' || c == '>')
        .unwrap_or(s.len());
    let opening = s[..len].matches('(').count();
    let mut closing = s[..len].matches(')').count();
    while let Some(last) = s[..len].chars().next_back() {
        if last == ')' && opening < closing {
            closing -= 1;
        } else if !".,;:!?'\"*_~".contains(last) {
            break;
        }
        len -= last.len_utf8();
    }
    if len <= scheme_len {
        return None;
    }
    let href = decode_entities(&s[..len]);
    Some((
        Atom::Link {
            label: href.clone(),
            href,
        },
        len,
    ))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Literal,
    Open,
    Close,
}

/// Pairs each closing marker with the nearest open marker of the same character; openers of other
/// characters left inside the pair become literal, so spans always nest. Linear: each opener is
/// pushed and popped once.
fn match_markers(atoms: &[Atom<'_>]) -> Vec<Role> {
    let mut roles = vec![Role::Literal; atoms.len()];
    let mut openers: [Vec<usize>; 3] = Default::default();
    for (i, atom) in atoms.iter().enumerate() {
        let Atom::Marker { ch, open, close } = *atom else {
            continue;
        };
        let kind = MARKERS.iter().position(|m| *m == ch).unwrap_or(0);
        if close
            && let Some(&start) = openers[kind].last()
            && start + 1 < i
        {
            openers[kind].pop();
            roles[start] = Role::Open;
            roles[i] = Role::Close;
            for stack in &mut openers {
                while stack.last().is_some_and(|&inner| inner > start) {
                    stack.pop();
                }
            }
            continue;
        }
        if open {
            openers[kind].push(i);
        }
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(text: &str) -> String {
        render(text, Style::Full).html
    }

    fn plain(text: &str) -> String {
        render(text, Style::Full).plain
    }

    #[test]
    fn emphasis_and_code() {
        assert_eq!(
            html("*bold* _it_ ~gone~ `x < y`"),
            "<b>bold</b> <i>it</i> <del>gone</del> <code>x &lt; y</code>"
        );
        assert_eq!(plain("*bold* _it_ ~gone~ `x < y`"), "bold it gone x < y");
        assert_eq!(html("*_both_*"), "<b><i>both</i></b>");
        assert_eq!(html("*a _b* c_"), "<b>a _b</b> c_");
        assert_eq!(html("`*not bold*`"), "<code>*not bold*</code>");
    }

    #[test]
    fn markers_inside_words_or_unpaired_stay_literal() {
        assert_eq!(
            html("snake_case_name and 2*3*4"),
            "snake_case_name and 2*3*4"
        );
        assert_eq!(html("a * b * c"), "a * b * c");
        assert_eq!(html("**"), "**");
        assert_eq!(html("*unclosed"), "*unclosed");
        assert_eq!(html("`unclosed"), "`unclosed");
    }

    #[test]
    fn links_with_and_without_labels() {
        assert_eq!(
            html("See <https://ci.example/p/1?a=1&amp;b=2|pipeline #1> or <https://x.example>"),
            "See <a href=\"https://ci.example/p/1?a=1&amp;b=2\">pipeline #1</a> or \
             <a href=\"https://x.example\">https://x.example</a>"
        );
        assert_eq!(
            plain("See <https://ci.example/p/1?a=1&amp;b=2|pipeline #1> or <https://x.example>"),
            "See pipeline #1 (https://ci.example/p/1?a=1&b=2) or https://x.example"
        );
        assert_eq!(
            html("<mailto:ops@example.org|Ops>"),
            "<a href=\"mailto:ops@example.org\">Ops</a>"
        );
        assert_eq!(
            plain("<mailto:ops@example.org|Ops> <mailto:a@b.c>"),
            "Ops (ops@example.org) a@b.c"
        );
        assert_eq!(
            html("*<https://x.example/a_b_c|bold link>*"),
            "<b><a href=\"https://x.example/a_b_c\">bold link</a></b>"
        );
    }

    #[test]
    fn unsafe_or_unknown_angle_brackets_are_text() {
        assert_eq!(
            html("<javascript:alert(1)|click>"),
            "&lt;javascript:alert(1)|click&gt;"
        );
        assert_eq!(html("a <b> c"), "a &lt;b&gt; c");
        assert_eq!(
            html("1 &lt; 2 &amp;&amp; <script>"),
            "1 &lt; 2 &amp;&amp; &lt;script&gt;"
        );
        assert_eq!(plain("1 &lt; 2 &amp;&amp; 3 &gt; 2"), "1 < 2 && 3 > 2");
        assert_eq!(plain("&amp;lt;"), "&lt;");
    }

    #[test]
    fn bare_urls_become_links_without_trailing_punctuation() {
        assert_eq!(
            html("Open https://x.example/a_b_c. (see https://w.example/Foo_(bar))"),
            "Open <a href=\"https://x.example/a_b_c\">https://x.example/a_b_c</a>. (see \
             <a href=\"https://w.example/Foo_(bar)\">https://w.example/Foo_(bar)</a>)"
        );
        assert_eq!(
            html("*https://x.example*"),
            "<b><a href=\"https://x.example\">https://x.example</a></b>"
        );
        assert_eq!(html("nothttp://x"), "nothttp://x");
    }

    #[test]
    fn mentions_are_readable_text() {
        assert_eq!(
            plain(
                "<@U123> <@U9|bob> in <#C1|general> <#C2> <!here> <!channel|channel> <!subteam^S1|@oncall> <!date^1392734382^{date}|Feb 18, 2014>"
            ),
            "@U123 @bob in #general #C2 @here @channel @oncall Feb 18, 2014"
        );
        assert_eq!(html("<!everyone>"), "@everyone");
    }

    #[test]
    fn lines_quotes_and_lists() {
        assert_eq!(html("one\ntwo"), "one<br>two");
        assert_eq!(
            html("Changes:\n• *fix* crash\n- add <https://x.example|docs>\nend"),
            "Changes:<ul><li><b>fix</b> crash</li><li>add <a href=\"https://x.example\">docs</a></li></ul>end"
        );
        assert_eq!(
            plain("Changes:\n• *fix* crash\n- add it"),
            "Changes:\n• fix crash\n- add it"
        );
        assert_eq!(
            html("3. c\n4. d"),
            "<ol start=\"3\"><li>c</li><li>d</li></ol>"
        );
        assert_eq!(html("1. a\n2) b"), "<ol><li>a</li><li>b</li></ol>");
        assert_eq!(
            html("&gt; quoted *text*\n> more\nafter"),
            "<blockquote>quoted <b>text</b><br>more</blockquote>after"
        );
        assert_eq!(plain("&gt; quoted *text*"), "> quoted text");
        assert_eq!(
            html("intro\n>>> all\nof this"),
            "intro<blockquote>all<br>of this</blockquote>"
        );
        assert_eq!(html("*bold* start"), "<b>bold</b> start");
    }

    #[test]
    fn fenced_blocks_are_literal() {
        assert_eq!(
            html("Output:\n```\nfn main() { *x* < 1 }\n```\ndone"),
            "Output:<pre><code>fn main() { *x* &lt; 1 }</code></pre>done"
        );
        assert_eq!(
            plain("Output:\n```\nx &amp; y\n```\ndone"),
            "Output:\nx & y\ndone"
        );
        assert_eq!(
            html("a ```inline``` b"),
            "a <pre><code>inline</code></pre> b"
        );
        assert_eq!(html("```unclosed"), "```unclosed");
    }

    #[test]
    fn links_only_style_keeps_markers() {
        let piece = render("*x* <https://e.example|e>\n- y", Style::LinksOnly);
        assert_eq!(piece.html, "*x* <a href=\"https://e.example\">e</a><br>- y");
        assert_eq!(piece.plain, "*x* e (https://e.example)\n- y");
    }

    #[test]
    fn plain_text_objects_are_escaped() {
        let piece = plain_text("a <b> &amp; c\nd");
        assert_eq!(piece.html, "a &lt;b&gt; &amp; c<br>d");
        assert_eq!(piece.plain, "a <b> & c\nd");
    }

    #[test]
    fn long_adversarial_lines_render_quickly() {
        let line = "_a *b ~c ".repeat(20_000) + &"*".repeat(20_000);
        let started = std::time::Instant::now();
        let piece = render(&line, Style::Full);
        assert!(started.elapsed().as_secs() < 2);
        assert!(piece.plain.len() >= 180_000);
    }
}
