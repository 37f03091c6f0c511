//! Block Kit `rich_text` blocks: sections, bullet and ordered lists, preformatted text and
//! quotes, with styled text, links, emoji and mentions. Their text is literal (no mrkdwn, no
//! entities), so it is only escaped.

use serde_json::Value;

use super::{
    PayloadError, Piece,
    fields::{Object, as_object, child, item, opt_array, opt_bool, opt_object, opt_str},
    sanitize::{escape_attr, escape_text, is_allowed_link},
    stack,
};

/// Renders a `rich_text` block (its `elements`).
pub(super) fn render(block: &Object, path: &str) -> Result<Piece, PayloadError> {
    let mut pieces = Vec::new();
    let elements_path = child(path, "elements");
    for (index, element) in elements(block, path)?.iter().enumerate() {
        let path = item(&elements_path, index);
        let element = as_object(element, &path)?;
        let piece = match opt_str(element, "type", &path)? {
            Some("rich_text_section") => inline(element, &path, false)?.in_div(),
            Some("rich_text_preformatted") => {
                let code = inline(element, &path, true)?;
                Piece {
                    html: format!("<pre><code>{}</code></pre>", code.html),
                    plain: code.plain,
                }
            }
            Some("rich_text_quote") => {
                let quote = inline(element, &path, false)?;
                Piece {
                    html: format!("<blockquote>{}</blockquote>", quote.html),
                    plain: quote
                        .plain
                        .lines()
                        .map(|l| format!("> {l}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                }
            }
            Some("rich_text_list") => list(element, &path)?,
            _ => Piece::default(),
        };
        pieces.push(piece);
    }
    Ok(stack(pieces))
}

fn elements<'a>(object: &'a Object, path: &str) -> Result<&'a [Value], PayloadError> {
    Ok(opt_array(object, "elements", path)?.unwrap_or_default())
}

/// `rich_text_list`: `style` `bullet` (default) or `ordered`, one item per section.
fn list(object: &Object, path: &str) -> Result<Piece, PayloadError> {
    let ordered = opt_str(object, "style", path)? == Some("ordered");
    let tag = if ordered { "ol" } else { "ul" };
    let mut html = String::new();
    let mut plain = Vec::new();
    let elements_path = child(path, "elements");
    for (index, element) in elements(object, path)?.iter().enumerate() {
        let path = item(&elements_path, index);
        let entry = inline(as_object(element, &path)?, &path, false)?;
        html.push_str(&format!("<li>{}</li>", entry.html));
        let marker = if ordered {
            format!("{}. ", plain.len() + 1)
        } else {
            "• ".to_owned()
        };
        plain.push(format!("{marker}{}", entry.plain));
    }
    if plain.is_empty() {
        return Ok(Piece::default());
    }
    Ok(Piece {
        html: format!("<{tag}>{html}</{tag}>"),
        plain: plain.join("\n"),
    })
}

/// The inline elements of a section, quote or preformatted block.
fn inline(object: &Object, path: &str, preformatted: bool) -> Result<Piece, PayloadError> {
    let mut out = Piece::default();
    let elements_path = child(path, "elements");
    for (index, element) in elements(object, path)?.iter().enumerate() {
        let path = item(&elements_path, index);
        let element = as_object(element, &path)?;
        let text = |key: &str| -> Result<String, PayloadError> {
            Ok(opt_str(element, key, &path)?.unwrap_or_default().to_owned())
        };
        match opt_str(element, "type", &path)? {
            Some("text") => {
                let text = text("text")?;
                let mut html = escape_text(&text);
                if !preformatted {
                    html = html.replace('\n', "<br>");
                }
                out.html.push_str(&styled(html, element, &path)?);
                out.plain.push_str(&text);
            }
            Some("link") => {
                let url = text("url")?;
                let label = Some(text("text")?)
                    .filter(|l| !l.is_empty())
                    .unwrap_or_else(|| url.clone());
                if is_allowed_link(&url) {
                    let link = format!(
                        "<a href=\"{}\">{}</a>",
                        escape_attr(&url),
                        escape_text(&label)
                    );
                    out.html.push_str(&styled(link, element, &path)?);
                    out.plain.push_str(&if label == url {
                        url
                    } else {
                        format!("{label} ({url})")
                    });
                } else {
                    out.push_text(&label);
                }
            }
            Some("emoji") => out.push_text(&emoji(element, &path)?),
            Some("user") => out.push_text(&format!("@{}", text("user_id")?)),
            Some("usergroup") => out.push_text(&format!("@{}", text("usergroup_id")?)),
            Some("channel") => out.push_text(&format!("#{}", text("channel_id")?)),
            Some("broadcast") => out.push_text(&format!("@{}", text("range")?)),
            Some("date") => out.push_text(&text("fallback")?),
            Some("color") => out.push_text(&text("value")?),
            _ => {}
        }
    }
    Ok(out)
}

/// Wraps `html` in the tags its `style` (`bold`, `italic`, `strike`, `code`) asks for.
fn styled(mut html: String, element: &Object, path: &str) -> Result<String, PayloadError> {
    let Some(style) = opt_object(element, "style", path)? else {
        return Ok(html);
    };
    let style_path = child(path, "style");
    for (key, tag) in [
        ("code", "code"),
        ("strike", "del"),
        ("italic", "i"),
        ("bold", "b"),
    ] {
        if opt_bool(style, key, &style_path)? == Some(true) {
            html = format!("<{tag}>{html}</{tag}>");
        }
    }
    Ok(html)
}

/// An emoji: its `unicode` code points (`1f44d` or `1f1eb-1f1f7`) when given, else `:name:`.
fn emoji(element: &Object, path: &str) -> Result<String, PayloadError> {
    let from_unicode = opt_str(element, "unicode", path)?.and_then(|points| {
        points
            .split('-')
            .map(|hex| u32::from_str_radix(hex, 16).ok().and_then(char::from_u32))
            .collect::<Option<String>>()
    });
    Ok(match from_unicode {
        Some(emoji) => emoji,
        None => format!(":{}:", opt_str(element, "name", path)?.unwrap_or("emoji")),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sections_lists_code_and_quotes() {
        let block = json!({"type": "rich_text", "elements": [
            {"type": "rich_text_section", "elements": [
                {"type": "text", "text": "Hi "},
                {"type": "user", "user_id": "U1"},
                {"type": "text", "text": " <done>", "style": {"bold": true, "italic": true}},
                {"type": "emoji", "name": "tada", "unicode": "1f389"},
                {"type": "link", "url": "https://x.example", "text": "site"}
            ]},
            {"type": "rich_text_list", "style": "ordered", "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": "one"}]},
                {"type": "rich_text_section", "elements": [{"type": "emoji", "name": "fire"}]}
            ]},
            {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": "a\n<b>"}]},
            {"type": "rich_text_quote", "elements": [{"type": "text", "text": "said\nthis"}]}
        ]});
        let piece = render(block.as_object().unwrap(), "blocks[0]").unwrap();
        assert_eq!(
            piece.html,
            "<div>Hi @U1<b><i> &lt;done&gt;</i></b>🎉<a href=\"https://x.example\">site</a></div>\
             <ol><li>one</li><li>:fire:</li></ol>\
             <pre><code>a\n&lt;b&gt;</code></pre>\
             <blockquote>said<br>this</blockquote>"
        );
        assert_eq!(
            piece.plain,
            "Hi @U1 <done>🎉site (https://x.example)\n1. one\n2. :fire:\na\n<b>\n> said\n> this"
        );
    }

    #[test]
    fn wrong_types_are_named() {
        let block = json!({"elements": [{"type": "rich_text_section", "elements": [
            {"type": "text", "text": "x", "style": {"bold": "yes"}}]}]});
        assert_eq!(
            render(block.as_object().unwrap(), "blocks[2]")
                .unwrap_err()
                .0,
            "`blocks[2].elements[0].elements[0].style.bold` must be true or false"
        );
    }
}
