//! Turns the body POSTed to an incoming webhook into the content of the message it posts: a
//! plain-text `body`, Matrix HTML (`org.matrix.custom.html`) when the post has formatting, the
//! msgtype, and Slack's per-post `username`/`icon_url`. Pure: no I/O, no Matrix types.
//!
//! Accepted bodies: `application/json` (and `+json` types) holding Slack's form (`text` in mrkdwn,
//! `attachments`, `blocks`) or the plain form (`text` and `html`); Slack's form encoding
//! (`application/x-www-form-urlencoded` with the JSON in `payload=`); `text/plain`; and a body
//! without a content type (JSON when it parses as a JSON object, plain text otherwise).

mod attachments;
mod blocks;
mod fields;
mod mrkdwn;
mod rich_text;
mod sanitize;

use std::fmt;

use serde_json::Value;

use fields::{Object, opt_array, opt_bool, opt_str, type_name};
use mrkdwn::Style;
use sanitize::escape_text;

/// Most bytes the rendered content may take (its strings as JSON): a Matrix event is at most
/// 65,536 bytes in all, and the rest of the event needs room.
pub const MAX_RENDERED_BYTES: usize = 60_000;

/// The message content a webhook post becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedPost {
    /// Plain-text fallback, never empty.
    pub body: String,
    /// Matrix HTML (`org.matrix.custom.html`); None when the post has no formatting.
    pub formatted_body: Option<String>,
    pub msgtype: PostKind,
    /// Slack `username`: the display name to show for this post.
    pub username: Option<String>,
    /// Slack `icon_url`: an http(s) URL of the avatar to show for this post.
    pub icon_url: Option<String>,
}

/// The msgtype of the posted message: `m.notice` unless the JSON asks for `"msgtype": "m.text"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostKind {
    Notice,
    Text,
}

impl PostKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PostKind::Notice => "m.notice",
            PostKind::Text => "m.text",
        }
    }
}

/// Why a body cannot be posted; the message names the problem for the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadError(pub String);

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PayloadError {}

/// Renders a POSTed body, given its `Content-Type` header.
pub fn render(content_type: Option<&str>, body: &[u8]) -> Result<RenderedPost, PayloadError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        PayloadError(format!(
            "the body is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|mt| mt.trim().to_ascii_lowercase())
        .filter(|mt| !mt.is_empty());
    match media_type.as_deref() {
        None => {
            let looks_like_json = text.trim_start().starts_with('{')
                && serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object());
            if looks_like_json {
                render_json(text)
            } else {
                render_plain(text)
            }
        }
        Some("text/plain") => render_plain(text),
        Some("application/json") => render_json(text),
        Some(mt) if mt.starts_with("application/") && mt.ends_with("+json") => render_json(text),
        Some("application/x-www-form-urlencoded") => render_json(&form_payload(text)?),
        Some(other) => Err(PayloadError(format!(
            "unsupported content type `{other}`: send application/json, \
             application/x-www-form-urlencoded with a `payload` field, or text/plain"
        ))),
    }
}

/// Slack's other form: `payload=<url-encoded JSON>`.
fn form_payload(text: &str) -> Result<String, PayloadError> {
    let mut payload = None;
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decode(key)? != "payload" {
            continue;
        }
        if payload.is_some() {
            return Err(PayloadError(
                "the form has more than one `payload` field".into(),
            ));
        }
        payload = Some(form_decode(value)?);
    }
    payload.ok_or_else(|| {
        PayloadError("the form has no `payload` field (it must hold the message as JSON)".into())
    })
}

fn form_decode(part: &str) -> Result<String, PayloadError> {
    percent_encoding::percent_decode_str(&part.replace('+', " "))
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| PayloadError("a form field is not valid UTF-8 once decoded".into()))
}

fn render_plain(text: &str) -> Result<RenderedPost, PayloadError> {
    let text = text.replace("\r\n", "\n");
    let body = text.trim();
    if body.is_empty() {
        return Err(PayloadError("nothing to post: the body is empty".into()));
    }
    finish(
        Piece {
            html: plain_as_html(body),
            plain: body.to_owned(),
        },
        PostKind::Notice,
        None,
        None,
    )
}

fn render_json(text: &str) -> Result<RenderedPost, PayloadError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| PayloadError(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(object) = &value else {
        return Err(PayloadError(format!(
            "the JSON body must be an object, not {}",
            type_name(&value)
        )));
    };
    let msgtype = match opt_str(object, "msgtype", "")? {
        None | Some("m.notice") => PostKind::Notice,
        Some("m.text") => PostKind::Text,
        Some(_) => {
            return Err(PayloadError(
                "`msgtype` must be \"m.notice\" or \"m.text\"".into(),
            ));
        }
    };
    let username = opt_str(object, "username", "")?
        .map(str::trim)
        .filter(|u| !u.is_empty());
    let icon_url = opt_str(object, "icon_url", "")?
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(url) = icon_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(PayloadError(
            "`icon_url` must be an http or https URL".into(),
        ));
    }
    let content = match opt_str(object, "html", "")? {
        Some(html) => html_form(object, html)?,
        None => slack_form(object)?,
    };
    finish(
        content,
        msgtype,
        username.map(str::to_owned),
        icon_url.map(str::to_owned),
    )
}

/// `{"text": ..., "html": ...}`: the HTML sanitised, `text` (as written) the plain body.
fn html_form(object: &Object, html: &str) -> Result<Piece, PayloadError> {
    for key in ["attachments", "blocks"] {
        if object.get(key).is_some_and(|v| !v.is_null()) {
            return Err(PayloadError(format!(
                "`html` cannot be combined with `{key}`"
            )));
        }
    }
    let html = sanitize::sanitize(html);
    let plain = match opt_str(object, "text", "")?
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(text) => text.replace("\r\n", "\n"),
        None => sanitize::html_to_plain(&html),
    };
    if plain.is_empty() {
        return Err(PayloadError(
            "nothing to post: `html` has no text and there is no `text`".into(),
        ));
    }
    Ok(Piece { html, plain })
}

/// Slack's incoming-webhook JSON. With `blocks`, `text` is Slack's notification fallback and is
/// shown only when the blocks show nothing; `attachments` follow.
fn slack_form(object: &Object) -> Result<Piece, PayloadError> {
    let style = if opt_bool(object, "mrkdwn", "")?.unwrap_or(true) {
        Style::Full
    } else {
        Style::LinksOnly
    };
    let text = opt_str(object, "text", "")?.map(|text| mrkdwn::render(text, style));
    let blocks = opt_array(object, "blocks", "")?
        .map(|list| blocks::render(list, "blocks"))
        .transpose()?;
    let attachments = opt_array(object, "attachments", "")?
        .map(|list| attachments::render(list, "attachments"))
        .transpose()?;
    let main = blocks.filter(|piece| !piece.is_empty()).or(text);
    let content = stack([main, attachments].into_iter().flatten());
    if content.is_empty() {
        return Err(PayloadError(
            "nothing to post: no text, attachments or blocks".into(),
        ));
    }
    Ok(content)
}

/// The post, with `formatted_body` left out when the HTML says no more than the plain body.
fn finish(
    content: Piece,
    msgtype: PostKind,
    username: Option<String>,
    icon_url: Option<String>,
) -> Result<RenderedPost, PayloadError> {
    let formatted_body = (content.html != plain_as_html(&content.plain)).then_some(content.html);
    let json_len = |s: &str| serde_json::to_string(s).map_or(usize::MAX, |json| json.len());
    let size = [
        Some(&content.plain),
        formatted_body.as_ref(),
        username.as_ref(),
        icon_url.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|s| json_len(s))
    .fold(0usize, usize::saturating_add);
    if size > MAX_RENDERED_BYTES {
        return Err(PayloadError(format!(
            "the message is too long once rendered ({size} bytes, at most {MAX_RENDERED_BYTES})"
        )));
    }
    Ok(RenderedPost {
        body: content.plain,
        formatted_body,
        msgtype,
        username,
        icon_url,
    })
}

/// The HTML a plain text shows as: escaped, line breaks as `<br>`.
fn plain_as_html(text: &str) -> String {
    escape_text(text).replace('\n', "<br>")
}

/// A rendered fragment: its HTML and its plain-text equivalent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Piece {
    html: String,
    plain: String,
}

impl Piece {
    /// Appends literal text (escaped in the HTML).
    fn push_text(&mut self, text: &str) {
        self.html.push_str(&escape_text(text));
        self.plain.push_str(text);
    }

    fn is_empty(&self) -> bool {
        self.plain.trim().is_empty()
    }

    /// The same fragment as a block of its own.
    fn in_div(self) -> Piece {
        Piece {
            html: format!("<div>{}</div>", self.html),
            plain: self.plain,
        }
    }

    /// The same fragment in small grey text (Slack's context and footer lines).
    fn muted(self) -> Piece {
        Piece {
            html: format!("<font data-mx-color=\"#808080\">{}</font>", self.html),
            plain: self.plain,
        }
    }
}

/// Fragments one after the other, empty ones left out; plain texts on their own lines.
fn stack(pieces: impl IntoIterator<Item = Piece>) -> Piece {
    let mut out = Piece::default();
    for piece in pieces.into_iter().filter(|piece| !piece.is_empty()) {
        out.html.push_str(&piece.html);
        if !out.plain.is_empty() {
            out.plain.push('\n');
        }
        out.plain.push_str(&piece.plain);
    }
    out
}

#[cfg(test)]
mod tests;
