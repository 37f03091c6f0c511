//! The HTML pages of single sign-on: the provider picker, the new-account confirmation, the
//! client confirmation, the user-interactive auth fallback and errors. Every value is escaped.

use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::util::html_escape as esc;

/// A page; never cached, never framed (a framed page could be clicked through by another site).
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:sans-serif;max-width:32em;margin:3em auto;\
         padding:0 1em;line-height:1.5}}a.button,button{{display:inline-block;padding:.5em 1em;\
         border-radius:4px;background:#0b6bcb;color:#fff;text-decoration:none;border:0;\
         font-size:1em;cursor:pointer}}input{{font-size:1em;padding:.3em}}.error{{color:#b00}}\
         </style></head><body><h1>{title}</h1>{body}</body></html>\n",
        title = esc(title),
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    response
}

pub fn error(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Sign-in failed",
        &format!("<p class=\"error\">{}</p>", esc(message)),
    )
}

/// Several providers and no choice yet: one link each.
pub fn picker(choices: &[(String, String)]) -> Response {
    let links: String = choices
        .iter()
        .map(|(name, href)| {
            format!(
                "<p><a class=\"button\" href=\"{}\">Continue with {}</a></p>",
                esc(href),
                esc(name)
            )
        })
        .collect();
    page(StatusCode::OK, "Choose how to sign in", &links)
}

/// A first sign-in: the account about to be made, with the username field when the user
/// chooses it (`editable`), and the reason a previous choice was refused.
pub fn new_account(
    server: &str,
    provider: &str,
    localpart: Option<&str>,
    display_name: Option<&str>,
    editable: bool,
    problem: Option<&str>,
) -> Response {
    let mut body = format!(
        "<p>You signed in with {} for the first time. Create your account on {}:</p>",
        esc(provider),
        esc(server)
    );
    if let Some(problem) = problem {
        body.push_str(&format!("<p class=\"error\">{}</p>", esc(problem)));
    }
    body.push_str("<form method=\"post\" action=\"/_parvis/client/sso/new_account\">");
    if editable {
        body.push_str(&format!(
            "<p><label>Username: @<input name=\"username\" required value=\"{}\" \
             pattern=\"[a-z0-9._=/+\\-]+\" autocomplete=\"off\">:{}</label></p>",
            esc(localpart.unwrap_or_default()),
            esc(server)
        ));
    } else {
        body.push_str(&format!(
            "<p>Username: <strong>@{}:{}</strong></p>",
            esc(localpart.unwrap_or_default()),
            esc(server)
        ));
    }
    if let Some(name) = display_name {
        body.push_str(&format!("<p>Display name: {}</p>", esc(name)));
    }
    body.push_str("<p><button type=\"submit\">Create account</button></p></form>");
    page(StatusCode::OK, "Create your account", &body)
}

/// A client not in `client_whitelist` is about to get access: the user decides.
pub fn confirm_client(user: &str, target: &str, client_host: &str) -> Response {
    page(
        StatusCode::OK,
        "Continue to your app",
        &format!(
            "<p>You are signing in as <strong>{}</strong>.</p>\
             <p>The app at <strong>{}</strong> will get access to your account. \
             Continue only if you started this sign-in from that app.</p>\
             <p><a class=\"button\" href=\"{}\">Continue</a></p>",
            esc(user),
            esc(client_host),
            esc(target)
        ),
    )
}

/// The user-interactive auth fallback: confirm with one of the user's providers.
pub fn uia_start(choices: &[(String, String)]) -> Response {
    let links: String = choices
        .iter()
        .map(|(name, href)| {
            format!(
                "<p><a class=\"button\" href=\"{}\">Confirm with {}</a></p>",
                esc(href),
                esc(name)
            )
        })
        .collect();
    page(
        StatusCode::OK,
        "Confirm your identity",
        &format!("<p>To continue, confirm it is you.</p>{links}"),
    )
}

/// The user-interactive auth fallback is done: the client is told (the spec's `onAuthDone` or
/// an `authDone` message to the opener) and retries its request.
pub fn uia_done() -> Response {
    page(
        StatusCode::OK,
        "Identity confirmed",
        "<p>You can go back to your app.</p><script>\
         if (window.onAuthDone) { window.onAuthDone(); } \
         else if (window.opener && window.opener.postMessage) { window.opener.postMessage(\"authDone\", \"*\"); }\
         </script>",
    )
}
