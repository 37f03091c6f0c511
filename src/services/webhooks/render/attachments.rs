//! Slack's legacy `attachments`: each one becomes its `pretext` followed by a `<blockquote>`
//! holding the author, the title (a link with `title_link`), the text, the fields as a list, the
//! image as a link (Matrix clients only show `mxc://` images), and the footer with `ts`; `color`
//! becomes a coloured bar. The plain body of an attachment is its `fallback` when there is one.

use serde_json::Value;

use super::{
    PayloadError, Piece, blocks,
    fields::{Object, as_object, child, item, opt_array, opt_bool, opt_number, opt_str},
    mrkdwn::{self, Style},
    sanitize::{escape_attr, escape_text, is_allowed_link, is_hex_colour},
    stack,
};

/// Renders the `attachments` array found at `path`.
pub(super) fn render(list: &[Value], path: &str) -> Result<Piece, PayloadError> {
    let mut pieces = Vec::with_capacity(list.len());
    for (index, value) in list.iter().enumerate() {
        pieces.push(attachment(value, &item(path, index))?);
    }
    Ok(stack(pieces))
}

fn attachment(value: &Value, path: &str) -> Result<Piece, PayloadError> {
    let object = as_object(value, path)?;
    let formatted = FormattedFields::read(object, path)?;
    let str_field = |key: &str| -> Result<Option<&str>, PayloadError> {
        Ok(opt_str(object, key, path)?
            .map(str::trim)
            .filter(|s| !s.is_empty()))
    };

    let pretext = str_field("pretext")?.map(|t| mrkdwn::render(t, formatted.style("pretext")));
    let mut lines = Vec::new();
    if let Some(name) = str_field("author_name")? {
        lines.push(linked(name, str_field("author_link")?));
    }
    if let Some(title) = str_field("title")? {
        let mut title = linked(title, str_field("title_link")?);
        title.html = format!("<b>{}</b>", title.html);
        lines.push(title);
    }
    if let Some(text) = str_field("text")? {
        lines.push(mrkdwn::render(text, formatted.style("text")));
    }
    if let Some(list) = opt_array(object, "blocks", path)? {
        lines.push(blocks::render(list, &child(path, "blocks"))?);
    }
    if let Some(list) = opt_array(object, "fields", path)? {
        lines.push(fields(
            list,
            &child(path, "fields"),
            formatted.style("fields"),
        )?);
    }
    if let Some(url) = str_field("image_url")?.filter(|url| is_allowed_link(url)) {
        lines.push(linked(url, Some(url)));
    }
    let footer = str_field("footer")?.map(|f| mrkdwn::render(f, Style::LinksOnly));
    let time = opt_number(object, "ts", path)?.and_then(utc_minute);
    let footer = match (footer, time) {
        (Some(mut footer), Some(time)) => {
            footer.push_text(&format!(" | {time}"));
            Some(footer)
        }
        (footer, time) => footer.or_else(|| time.map(|time| plain_piece(&time))),
    };
    lines.extend(footer.map(Piece::muted));

    let mut lines: Vec<Piece> = lines.into_iter().filter(|line| !line.is_empty()).collect();
    let fallback = str_field("fallback")?.map(|f| mrkdwn::render(f, Style::LinksOnly));
    if lines.is_empty() && pretext.is_none() {
        return Ok(fallback.unwrap_or_default());
    }
    if let (Some(colour), Some(first)) = (colour(object, path)?, lines.first_mut()) {
        first
            .html
            .insert_str(0, &format!("<font data-mx-color=\"{colour}\">▌</font> "));
    }
    let body = stack(lines.into_iter().map(Piece::in_div));
    let quoted = (!body.is_empty()).then(|| Piece {
        html: format!("<blockquote>{}</blockquote>", body.html),
        plain: body.plain,
    });
    let mut rendered = stack([pretext.map(Piece::in_div), quoted].into_iter().flatten());
    if let Some(fallback) = fallback.filter(|f| !f.is_empty()) {
        rendered.plain = fallback.plain;
    }
    Ok(rendered)
}

/// Which of `pretext`, `text` and `fields` take mrkdwn: those `mrkdwn_in` lists, or all three
/// when it is absent (as Slack renders attachments today). Links and mentions always work.
struct FormattedFields(Option<Vec<String>>);

impl FormattedFields {
    fn read(object: &Object, path: &str) -> Result<Self, PayloadError> {
        let Some(list) = opt_array(object, "mrkdwn_in", path)? else {
            return Ok(Self(None));
        };
        let names = list
            .iter()
            .enumerate()
            .map(|(index, name)| {
                name.as_str().map(str::to_owned).ok_or_else(|| {
                    PayloadError(format!(
                        "`{}` must be a string",
                        item(&child(path, "mrkdwn_in"), index)
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(Some(names)))
    }

    fn style(&self, field: &str) -> Style {
        match &self.0 {
            Some(names) if !names.iter().any(|name| name == field) => Style::LinksOnly,
            _ => Style::Full,
        }
    }
}

/// `fields`: `[{title, value, short}]` as a list of `<b>title</b>: value`.
fn fields(list: &[Value], path: &str, style: Style) -> Result<Piece, PayloadError> {
    let mut html = String::new();
    let mut plain = Vec::new();
    for (index, value) in list.iter().enumerate() {
        let path = item(path, index);
        let field = as_object(value, &path)?;
        opt_bool(field, "short", &path)?;
        let title = opt_str(field, "title", &path)?
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let value = opt_str(field, "value", &path)?
            .map(|v| mrkdwn::render(v, style))
            .filter(|v| !v.is_empty());
        let (item_html, item_plain) = match (title.map(mrkdwn::plain_text), value) {
            (Some(title), Some(value)) => (
                format!("<b>{}</b>: {}", title.html, value.html),
                format!("{}: {}", title.plain, value.plain),
            ),
            (Some(title), None) => (format!("<b>{}</b>", title.html), title.plain),
            (None, Some(value)) => (value.html, value.plain),
            (None, None) => continue,
        };
        html.push_str(&format!("<li>{item_html}</li>"));
        plain.push(item_plain);
    }
    if plain.is_empty() {
        return Ok(Piece::default());
    }
    Ok(Piece {
        html: format!("<ul>{html}</ul>"),
        plain: plain.join("\n"),
    })
}

/// `text`, a link to `url` when it has a permitted scheme; plain: `text (url)`.
fn linked(text: &str, url: Option<&str>) -> Piece {
    let label = mrkdwn::plain_text(text);
    match url.filter(|url| is_allowed_link(url)) {
        Some(url) if url == label.plain => Piece {
            html: format!("<a href=\"{}\">{}</a>", escape_attr(url), label.html),
            plain: label.plain,
        },
        Some(url) => Piece {
            html: format!("<a href=\"{}\">{}</a>", escape_attr(url), label.html),
            plain: format!("{} ({url})", label.plain),
        },
        None => label,
    }
}

fn plain_piece(text: &str) -> Piece {
    Piece {
        html: escape_text(text),
        plain: text.to_owned(),
    }
}

/// `color`: Slack's `good`/`warning`/`danger` or a hex colour (`#` optional); anything else is
/// ignored (it is decoration).
fn colour(object: &Object, path: &str) -> Result<Option<String>, PayloadError> {
    let Some(colour) = opt_str(object, "color", path)?.map(str::trim) else {
        return Ok(None);
    };
    let named = match colour {
        "good" => Some("#2eb886"),
        "warning" => Some("#daa038"),
        "danger" => Some("#a30200"),
        _ => None,
    };
    let hex = if colour.starts_with('#') {
        colour.to_owned()
    } else {
        format!("#{colour}")
    };
    Ok(named
        .map(str::to_owned)
        .or_else(|| is_hex_colour(&hex).then(|| hex.to_ascii_lowercase())))
}

/// `ts` (Unix seconds) as `2024-05-01 12:00 UTC`; None outside years 1970 to 9999.
fn utc_minute(ts: f64) -> Option<String> {
    if !(0.0..253_402_300_800.0).contains(&ts) {
        return None;
    }
    let secs = ts as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date, counting in 400-year eras from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    Some(format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn one(value: Value) -> Piece {
        render(&[value], "attachments").unwrap()
    }

    #[test]
    fn title_link_text_fields_and_footer() {
        let piece = one(json!({
            "color": "danger",
            "author_name": "Zabbix",
            "title": "Disk full on db1",
            "title_link": "https://zabbix.example/events/7",
            "text": "Free space *below 5%*",
            "fields": [
                {"title": "Severity", "value": "High", "short": true},
                {"title": "Host", "value": "`db1`", "short": true}
            ],
            "footer": "Zabbix",
            "ts": 1714564800
        }));
        assert_eq!(
            piece.html,
            "<blockquote><div><font data-mx-color=\"#a30200\">▌</font> Zabbix</div>\
             <div><b><a href=\"https://zabbix.example/events/7\">Disk full on db1</a></b></div>\
             <div>Free space <b>below 5%</b></div>\
             <div><ul><li><b>Severity</b>: High</li><li><b>Host</b>: <code>db1</code></li></ul></div>\
             <div><font data-mx-color=\"#808080\">Zabbix | 2024-05-01 12:00 UTC</font></div></blockquote>"
        );
        assert_eq!(
            piece.plain,
            "Zabbix\nDisk full on db1 (https://zabbix.example/events/7)\nFree space below 5%\n\
             Severity: High\nHost: db1\nZabbix | 2024-05-01 12:00 UTC"
        );
    }

    #[test]
    fn fallback_is_the_plain_body_and_pretext_sits_outside() {
        let piece = one(json!({
            "fallback": "Build failed: <https://ci.example/1|#1>",
            "pretext": "New *failure*",
            "text": "details"
        }));
        assert_eq!(
            piece.html,
            "<div>New <b>failure</b></div><blockquote><div>details</div></blockquote>"
        );
        assert_eq!(piece.plain, "Build failed: #1 (https://ci.example/1)");
        assert_eq!(one(json!({"fallback": "only this"})).plain, "only this");
    }

    #[test]
    fn mrkdwn_in_limits_formatting() {
        let piece = one(json!({"text": "*t*", "pretext": "*p*", "mrkdwn_in": ["pretext"]}));
        assert_eq!(
            piece.html,
            "<div><b>p</b></div><blockquote><div>*t*</div></blockquote>"
        );
    }

    #[test]
    fn images_are_links_and_unsafe_links_are_dropped() {
        let piece = one(json!({
            "title": "graph",
            "title_link": "javascript:alert(1)",
            "image_url": "https://grafana.example/render/1.png"
        }));
        assert_eq!(
            piece.html,
            "<blockquote><div><b>graph</b></div><div><a href=\"https://grafana.example/render/1.png\">\
             https://grafana.example/render/1.png</a></div></blockquote>"
        );
        assert!(!piece.html.contains("<img"));
        assert_eq!(
            one(json!({"image_url": "data:image/png;base64,xx"})).html,
            ""
        );
    }

    #[test]
    fn colours_are_checked() {
        let bar = |c: &str| one(json!({"text": "x", "color": c})).html;
        assert!(bar("#36A64F").contains("data-mx-color=\"#36a64f\""));
        assert!(bar("36a64f").contains("data-mx-color=\"#36a64f\""));
        assert!(!bar("red\" onclick=\"x").contains("font"));
    }

    #[test]
    fn wrong_types_are_named() {
        let err = |v: Value| {
            render(&[json!({"text": "x"}), v], "attachments")
                .unwrap_err()
                .0
        };
        assert_eq!(err(json!("text")), "`attachments[1]` must be an object");
        assert_eq!(
            err(json!({"title": 1})),
            "`attachments[1].title` must be a string"
        );
        assert_eq!(
            err(json!({"fields": {}})),
            "`attachments[1].fields` must be an array"
        );
        assert_eq!(
            err(json!({"fields": [{"title": "a", "short": "yes"}]})),
            "`attachments[1].fields[0].short` must be true or false"
        );
        assert_eq!(
            err(json!({"mrkdwn_in": ["text", 2]})),
            "`attachments[1].mrkdwn_in[1]` must be a string"
        );
        assert_eq!(
            err(json!({"ts": true})),
            "`attachments[1].ts` must be a number"
        );
    }

    #[test]
    fn timestamps_format_as_utc() {
        assert_eq!(utc_minute(0.0).unwrap(), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(951_782_400.0).unwrap(), "2000-02-29 00:00 UTC");
        assert_eq!(utc_minute(1_709_251_199.9).unwrap(), "2024-02-29 23:59 UTC");
        assert_eq!(utc_minute(-1.0), None);
    }

    #[test]
    fn attachment_blocks_render_inside_the_quote() {
        let piece = one(json!({"blocks": [{"type": "divider"}]}));
        assert_eq!(piece.html, "<blockquote><div><hr></div></blockquote>");
    }
}
