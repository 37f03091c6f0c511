//! Slack Block Kit `blocks`: `section` (text and fields), `header`, `divider`, `context`,
//! `image` (as a link), `rich_text`. `actions` and `input` are left out (their buttons and inputs
//! cannot work in Matrix), as are block types Slack may add later.

use serde_json::Value;

use super::{
    PayloadError, Piece,
    fields::{Object, as_object, child, item, opt_array, opt_object, opt_str},
    mrkdwn::{self, Style},
    rich_text,
    sanitize::{escape_attr, is_allowed_link},
    stack,
};

/// Renders the `blocks` array found at `path`.
pub(super) fn render(list: &[Value], path: &str) -> Result<Piece, PayloadError> {
    let mut pieces = Vec::with_capacity(list.len());
    for (index, value) in list.iter().enumerate() {
        pieces.push(block(value, &item(path, index))?);
    }
    Ok(stack(pieces))
}

fn block(value: &Value, path: &str) -> Result<Piece, PayloadError> {
    let object = as_object(value, path)?;
    let kind = opt_str(object, "type", path)?
        .ok_or_else(|| PayloadError(format!("`{}` is missing", child(path, "type"))))?;
    Ok(match kind {
        "section" => section(object, path)?,
        "header" => match opt_object(object, "text", path)? {
            Some(text) => {
                let text = text_object(text, &child(path, "text"))?;
                Piece {
                    html: format!("<h3>{}</h3>", text.html),
                    plain: text.plain,
                }
            }
            None => Piece::default(),
        },
        "divider" => Piece {
            html: "<hr>".into(),
            plain: "---".into(),
        },
        "context" => context(object, path)?,
        "image" => image(object, path)?,
        "rich_text" => rich_text::render(object, path)?.in_div(),
        _ => Piece::default(),
    })
}

/// A section's `text`, then its `fields` as a list.
fn section(object: &Object, path: &str) -> Result<Piece, PayloadError> {
    let text = opt_object(object, "text", path)?
        .map(|text| text_object(text, &child(path, "text")))
        .transpose()?;
    let mut items = Vec::new();
    if let Some(list) = opt_array(object, "fields", path)? {
        let fields_path = child(path, "fields");
        for (index, field) in list.iter().enumerate() {
            let field_path = item(&fields_path, index);
            let piece = text_object(as_object(field, &field_path)?, &field_path)?;
            if !piece.is_empty() {
                items.push(piece);
            }
        }
    }
    let fields = (!items.is_empty()).then(|| Piece {
        html: format!(
            "<ul>{}</ul>",
            items
                .iter()
                .map(|p| format!("<li>{}</li>", p.html))
                .collect::<String>()
        ),
        plain: items
            .iter()
            .map(|p| p.plain.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    });
    Ok(stack(
        [text, fields].into_iter().flatten().map(Piece::in_div),
    ))
}

/// `context` elements (texts and images' alt text) on one muted line.
fn context(object: &Object, path: &str) -> Result<Piece, PayloadError> {
    let mut line = Piece::default();
    let elements_path = child(path, "elements");
    for (index, element) in opt_array(object, "elements", path)?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let element_path = item(&elements_path, index);
        let element = as_object(element, &element_path)?;
        let piece = match opt_str(element, "type", &element_path)? {
            Some("image") => opt_str(element, "alt_text", &element_path)?
                .map(mrkdwn::plain_text)
                .unwrap_or_default(),
            _ => text_object(element, &element_path)?,
        };
        if piece.is_empty() {
            continue;
        }
        if !line.plain.is_empty() {
            line.push_text(" ");
        }
        line.html.push_str(&piece.html);
        line.plain.push_str(&piece.plain);
    }
    Ok(if line.is_empty() {
        line
    } else {
        line.muted().in_div()
    })
}

/// An `image` block: a link to `image_url`, labelled by its title or alt text.
fn image(object: &Object, path: &str) -> Result<Piece, PayloadError> {
    let Some(url) = opt_str(object, "image_url", path)?
        .map(str::trim)
        .filter(|u| is_allowed_link(u))
    else {
        return Ok(Piece::default());
    };
    let title = opt_object(object, "title", path)?
        .map(|title| text_object(title, &child(path, "title")))
        .transpose()?
        .filter(|title| !title.is_empty());
    let label = match title {
        Some(title) => title,
        None => opt_str(object, "alt_text", path)?
            .map(str::trim)
            .filter(|alt| !alt.is_empty())
            .map_or_else(|| mrkdwn::plain_text(url), mrkdwn::plain_text),
    };
    let plain = if label.plain == url {
        url.to_owned()
    } else {
        format!("{} ({url})", label.plain)
    };
    Ok(Piece {
        html: format!("<a href=\"{}\">{}</a>", escape_attr(url), label.html),
        plain,
    }
    .in_div())
}

/// A text object `{"type": "mrkdwn" | "plain_text", "text": ...}`.
pub(super) fn text_object(object: &Object, path: &str) -> Result<Piece, PayloadError> {
    let text = opt_str(object, "text", path)?.unwrap_or_default();
    match opt_str(object, "type", path)? {
        Some("mrkdwn") => Ok(mrkdwn::render(text, Style::Full)),
        Some("plain_text") => Ok(mrkdwn::plain_text(text)),
        _ => Err(PayloadError(format!(
            "`{}` must be \"mrkdwn\" or \"plain_text\"",
            child(path, "type")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn blocks(value: Value) -> Result<Piece, PayloadError> {
        render(value.as_array().unwrap(), "blocks")
    }

    #[test]
    fn header_section_divider_context() {
        let piece = blocks(json!([
            {"type": "header", "text": {"type": "plain_text", "text": "Deal won <3"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Acme* signed <https://crm.example/d/9|the deal>"},
             "fields": [{"type": "mrkdwn", "text": "*Amount*\n$12,000"}, {"type": "plain_text", "text": "Q3"}],
             "accessory": {"type": "button", "text": {"type": "plain_text", "text": "Open"}}},
            {"type": "divider"},
            {"type": "context", "elements": [
                {"type": "image", "image_url": "https://x.example/i.png", "alt_text": "crm"},
                {"type": "mrkdwn", "text": "by _sales-bot_"}]},
            {"type": "actions", "elements": [{"type": "button"}]}
        ]))
        .unwrap();
        assert_eq!(
            piece.html,
            "<h3>Deal won &lt;3</h3>\
             <div><b>Acme</b> signed <a href=\"https://crm.example/d/9\">the deal</a></div>\
             <div><ul><li><b>Amount</b><br>$12,000</li><li>Q3</li></ul></div>\
             <hr>\
             <div><font data-mx-color=\"#808080\">crm by <i>sales-bot</i></font></div>"
        );
        assert_eq!(
            piece.plain,
            "Deal won <3\nAcme signed the deal (https://crm.example/d/9)\nAmount\n$12,000\nQ3\n---\ncrm by sales-bot"
        );
    }

    #[test]
    fn image_blocks_are_links() {
        let piece = blocks(json!([
            {"type": "image", "image_url": "https://g.example/p.png", "alt_text": "CPU graph"},
            {"type": "image", "image_url": "ftp://g.example/q.png",
             "title": {"type": "plain_text", "text": "Memory"}, "alt_text": "m"},
            {"type": "image", "image_url": "javascript:x", "alt_text": "bad"}
        ]))
        .unwrap();
        assert_eq!(
            piece.html,
            "<div><a href=\"https://g.example/p.png\">CPU graph</a></div>\
             <div><a href=\"ftp://g.example/q.png\">Memory</a></div>"
        );
        assert_eq!(
            piece.plain,
            "CPU graph (https://g.example/p.png)\nMemory (ftp://g.example/q.png)"
        );
    }

    #[test]
    fn wrong_types_are_named() {
        let err = |v: Value| blocks(v).unwrap_err().0;
        assert_eq!(err(json!([{"text": "x"}])), "`blocks[0].type` is missing");
        assert_eq!(err(json!([1])), "`blocks[0]` must be an object");
        assert_eq!(
            err(json!([{"type": "section", "text": {"type": "markdown", "text": "x"}}])),
            "`blocks[0].text.type` must be \"mrkdwn\" or \"plain_text\""
        );
        assert_eq!(
            err(json!([{"type": "section", "fields": [{"type": "mrkdwn", "text": 5}]}])),
            "`blocks[0].fields[0].text` must be a string"
        );
        assert_eq!(
            err(json!([{"type": "header", "text": "x"}])),
            "`blocks[0].text` must be an object"
        );
    }
}
