//! Whole payloads through `render`: each accepted form, realistic senders, each error.

use serde_json::{Value, json};

use super::*;

fn json_post(value: Value) -> RenderedPost {
    render(Some("application/json"), value.to_string().as_bytes()).unwrap()
}

fn json_error(value: Value) -> String {
    render(Some("application/json"), value.to_string().as_bytes())
        .unwrap_err()
        .0
}

/// The renderers only emit HTML the sanitiser would keep unchanged.
fn assert_clean(post: &RenderedPost) {
    if let Some(html) = &post.formatted_body {
        assert_eq!(&sanitize::sanitize(html), html);
    }
}

#[test]
fn slack_json_with_mrkdwn_username_and_icon() {
    let post = json_post(json!({
        "text": "*Deploy* of <https://git.example/app|app> to `prod` ~started~ done",
        "username": "Deploy bot",
        "icon_url": "https://cdn.example/bot.png",
        "channel": "#ignored"
    }));
    assert_eq!(
        post.formatted_body.as_deref(),
        Some(
            "<b>Deploy</b> of <a href=\"https://git.example/app\">app</a> to <code>prod</code> <del>started</del> done"
        )
    );
    assert_eq!(
        post.body,
        "Deploy of app (https://git.example/app) to prod started done"
    );
    assert_eq!(post.msgtype, PostKind::Notice);
    assert_eq!(post.username.as_deref(), Some("Deploy bot"));
    assert_eq!(
        post.icon_url.as_deref(),
        Some("https://cdn.example/bot.png")
    );
    assert_clean(&post);
}

#[test]
fn unformatted_text_has_no_formatted_body() {
    let post = json_post(
        json!({"text": "Backup finished: 3 files & 2 dirs\nall good", "msgtype": "m.text"}),
    );
    assert_eq!(post.body, "Backup finished: 3 files & 2 dirs\nall good");
    assert_eq!(post.formatted_body, None);
    assert_eq!(post.msgtype, PostKind::Text);
    assert_eq!(post.msgtype.as_str(), "m.text");
}

#[test]
fn mrkdwn_false_keeps_markers_but_links_work() {
    let post = json_post(json!({"text": "*x* <https://e.example|e>", "mrkdwn": false}));
    assert_eq!(
        post.formatted_body.as_deref(),
        Some("*x* <a href=\"https://e.example\">e</a>")
    );
    assert_eq!(post.body, "*x* e (https://e.example)");
}

#[test]
fn plain_json_with_text_and_html() {
    let post = json_post(json!({
        "text": "Ticket #12 opened",
        "html": "<p>Ticket <a href=\"https://desk.example/12\">#12</a> opened<script>steal()</script></p>"
    }));
    assert_eq!(
        post.formatted_body.as_deref(),
        Some("<p>Ticket <a href=\"https://desk.example/12\">#12</a> opened</p>")
    );
    assert_eq!(post.body, "Ticket #12 opened");
}

#[test]
fn plain_json_with_html_only_strips_tags_for_the_body() {
    let post =
        json_post(json!({"html": "<h3>Lead</h3><ul><li>Acme &amp; Co</li><li>$5k</li></ul>"}));
    assert_eq!(post.body, "Lead\n• Acme & Co\n• $5k");
    assert_eq!(
        post.formatted_body.as_deref(),
        Some("<h3>Lead</h3><ul><li>Acme &amp; Co</li><li>$5k</li></ul>")
    );
    assert_eq!(
        json_error(json!({"html": "<img src=\"https://x.example/a.png\"><script>x</script>"})),
        "nothing to post: `html` has no text and there is no `text`"
    );
    assert_eq!(
        json_error(json!({"html": "<b>x</b>", "attachments": []})),
        "`html` cannot be combined with `attachments`"
    );
}

#[test]
fn form_encoded_payload() {
    let payload =
        json!({"text": "Hello *world* & <https://x.example/?a=1&amp;b=2|more>"}).to_string();
    let encoded: String =
        percent_encoding::utf8_percent_encode(&payload, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let body = format!("token=abc&payload={encoded}");
    let post = render(
        Some("application/x-www-form-urlencoded; charset=utf-8"),
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        post.formatted_body.as_deref(),
        Some("Hello <b>world</b> &amp; <a href=\"https://x.example/?a=1&amp;b=2\">more</a>")
    );
    let plus_form = render(
        Some("application/x-www-form-urlencoded"),
        b"payload={\"text\":\"a+b\"}",
    )
    .unwrap();
    assert_eq!(plus_form.body, "a b");
}

#[test]
fn form_errors() {
    let form = |body: &[u8]| {
        render(Some("application/x-www-form-urlencoded"), body)
            .unwrap_err()
            .0
    };
    assert_eq!(
        form(b"text=hello"),
        "the form has no `payload` field (it must hold the message as JSON)"
    );
    assert_eq!(
        form(b"payload=%7B%7D&payload=%7B%7D"),
        "the form has more than one `payload` field"
    );
    assert_eq!(
        form(b"payload=%FF"),
        "a form field is not valid UTF-8 once decoded"
    );
    assert!(form(b"payload=not-json").starts_with("the body is not valid JSON: "));
}

#[test]
fn plain_text_posts() {
    let jira = "[JIRA] (OPS-123) Database backup failed <urgent>\r\nAssignee: Jane\r\nhttps://jira.example/browse/OPS-123\n";
    let post = render(Some("text/plain; charset=UTF-8"), jira.as_bytes()).unwrap();
    assert_eq!(
        post.body,
        "[JIRA] (OPS-123) Database backup failed <urgent>\nAssignee: Jane\nhttps://jira.example/browse/OPS-123"
    );
    assert_eq!(post.formatted_body, None);
    assert_eq!(post.msgtype, PostKind::Notice);
    assert_eq!(post.username, None);

    let untyped = render(None, b"*not* mrkdwn {here}").unwrap();
    assert_eq!(untyped.body, "*not* mrkdwn {here}");
    assert_eq!(untyped.formatted_body, None);
    assert_eq!(render(Some(""), b"{ not json").unwrap().body, "{ not json");
}

#[test]
fn missing_content_type_with_a_json_object_is_json() {
    let post = render(None, b"  {\"text\": \"*hi*\"}").unwrap();
    assert_eq!(post.formatted_body.as_deref(), Some("<b>hi</b>"));
    let suffixed = render(
        Some("Application/Vnd.Sender+JSON; charset=utf-8"),
        b"{\"text\":\"_x_\"}",
    )
    .unwrap();
    assert_eq!(suffixed.formatted_body.as_deref(), Some("<i>x</i>"));
}

#[test]
fn blocks_replace_text_unless_they_show_nothing() {
    let post = json_post(json!({
        "text": "fallback for notifications",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Real* content"}}]
    }));
    assert_eq!(
        post.formatted_body.as_deref(),
        Some("<div><b>Real</b> content</div>")
    );
    assert_eq!(post.body, "Real content");
    let only_buttons = json_post(json!({
        "text": "Approve?",
        "blocks": [{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Yes"}}]}]
    }));
    assert_eq!(only_buttons.body, "Approve?");
    assert_eq!(only_buttons.formatted_body, None);
}

#[test]
fn grafana_alert() {
    let post = json_post(json!({
        "channel": "",
        "username": "Grafana",
        "icon_emoji": "",
        "icon_url": "https://grafana.com/static/assets/img/fav32.png",
        "attachments": [{
            "title": "[FIRING:1] HighCPU (web-1)",
            "title_link": "https://grafana.example/alerting/list?search=HighCPU&view=state",
            "text": "*Firing*\n\nValue: B=97.3\nLabels:\n - alertname = HighCPU\n - instance = web-1\nSilence: https://grafana.example/alerting/silence/new?alertmanager=grafana",
            "fallback": "[FIRING:1] HighCPU (web-1)",
            "footer": "Grafana v9.5.2",
            "footer_icon": "https://grafana.com/static/assets/img/fav32.png",
            "color": "#D63232",
            "ts": 1714564800
        }]
    }));
    let html = post.formatted_body.as_deref().unwrap();
    assert_eq!(
        html,
        "<blockquote><div><font data-mx-color=\"#d63232\">▌</font> <b><a href=\"https://grafana.example/alerting/list?search=HighCPU&amp;view=state\">[FIRING:1] HighCPU (web-1)</a></b></div>\
         <div><b>Firing</b><br><br>Value: B=97.3<br>Labels:<ul><li>alertname = HighCPU</li><li>instance = web-1</li></ul>\
         Silence: <a href=\"https://grafana.example/alerting/silence/new?alertmanager=grafana\">https://grafana.example/alerting/silence/new?alertmanager=grafana</a></div>\
         <div><font data-mx-color=\"#808080\">Grafana v9.5.2 | 2024-05-01 12:00 UTC</font></div></blockquote>"
    );
    assert_eq!(post.body, "[FIRING:1] HighCPU (web-1)");
    assert_eq!(post.username.as_deref(), Some("Grafana"));
    assert_clean(&post);
}

#[test]
fn gitlab_pipeline_notification() {
    let post = json_post(json!({
        "text": "<https://gitlab.example/group/app|group/app>: Pipeline <https://gitlab.example/group/app/-/pipelines/42|#42> of branch <https://gitlab.example/group/app/-/commits/main|main> by Jane Doe (jane) has failed in 02:13",
        "attachments": [{
            "color": "#ff0000",
            "fields": [
                {"title": "Failed stage", "value": "<https://gitlab.example/group/app/-/pipelines/42/failures|test>", "short": true},
                {"title": "Failed job", "value": "<https://gitlab.example/group/app/-/jobs/7|rspec>", "short": true}
            ],
            "mrkdwn_in": ["fields"]
        }],
        "username": "GitLab"
    }));
    assert_eq!(
        post.formatted_body.as_deref(),
        Some(
            "<a href=\"https://gitlab.example/group/app\">group/app</a>: Pipeline \
             <a href=\"https://gitlab.example/group/app/-/pipelines/42\">#42</a> of branch \
             <a href=\"https://gitlab.example/group/app/-/commits/main\">main</a> by Jane Doe (jane) has failed in 02:13\
             <blockquote><div><font data-mx-color=\"#ff0000\">▌</font> <ul>\
             <li><b>Failed stage</b>: <a href=\"https://gitlab.example/group/app/-/pipelines/42/failures\">test</a></li>\
             <li><b>Failed job</b>: <a href=\"https://gitlab.example/group/app/-/jobs/7\">rspec</a></li></ul></div></blockquote>"
        )
    );
    assert_eq!(
        post.body,
        "group/app (https://gitlab.example/group/app): Pipeline #42 (https://gitlab.example/group/app/-/pipelines/42) \
         of branch main (https://gitlab.example/group/app/-/commits/main) by Jane Doe (jane) has failed in 02:13\n\
         Failed stage: test (https://gitlab.example/group/app/-/pipelines/42/failures)\n\
         Failed job: rspec (https://gitlab.example/group/app/-/jobs/7)"
    );
    assert_clean(&post);
}

#[test]
fn crm_blocks_post_is_clean() {
    let post = json_post(json!({
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "New opportunity"}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*Account:*\nAcme <script>"},
                {"type": "mrkdwn", "text": "*Value:*\n$40,000"}]},
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "Owner: <@U42|sam>"}]}
        ]
    }));
    assert_eq!(
        post.body,
        "New opportunity\nAccount:\nAcme <script>\nValue:\n$40,000\n---\nOwner: @sam"
    );
    assert!(
        post.formatted_body
            .as_deref()
            .unwrap()
            .contains("Acme &lt;script&gt;")
    );
    assert_clean(&post);
}

#[test]
fn json_errors_name_the_problem() {
    assert!(json_error(json!("text")).starts_with("the JSON body must be an object, not a string"));
    assert_eq!(
        json_error(json!([1])),
        "the JSON body must be an object, not an array"
    );
    assert_eq!(json_error(json!({"text": 5})), "`text` must be a string");
    assert_eq!(
        json_error(json!({"text": "x", "username": ["a"]})),
        "`username` must be a string"
    );
    assert_eq!(
        json_error(json!({"text": "x", "mrkdwn": "no"})),
        "`mrkdwn` must be true or false"
    );
    assert_eq!(
        json_error(json!({"text": "x", "attachments": {}})),
        "`attachments` must be an array"
    );
    assert_eq!(
        json_error(json!({"text": "x", "blocks": "b"})),
        "`blocks` must be an array"
    );
    assert_eq!(
        json_error(json!({"text": "x", "msgtype": "m.image"})),
        "`msgtype` must be \"m.notice\" or \"m.text\""
    );
    assert_eq!(
        json_error(json!({"text": "x", "icon_url": "javascript:x"})),
        "`icon_url` must be an http or https URL"
    );
    assert_eq!(
        json_error(json!({})),
        "nothing to post: no text, attachments or blocks"
    );
    assert_eq!(
        json_error(json!({"text": "  ", "attachments": [{"color": "good"}], "blocks": []})),
        "nothing to post: no text, attachments or blocks"
    );
    let bad = render(Some("application/json"), b"{\"text\": ")
        .unwrap_err()
        .0;
    assert!(
        bad.starts_with("the body is not valid JSON: EOF while parsing"),
        "{bad}"
    );
}

#[test]
fn body_level_errors() {
    assert_eq!(
        render(Some("text/plain"), b"caf\xe9").unwrap_err().0,
        "the body is not valid UTF-8 (at byte 3)"
    );
    assert_eq!(
        render(Some("image/png"), b"x").unwrap_err().0,
        "unsupported content type `image/png`: send application/json, \
         application/x-www-form-urlencoded with a `payload` field, or text/plain"
    );
    assert_eq!(
        render(Some("text/plain"), b" \n ").unwrap_err().0,
        "nothing to post: the body is empty"
    );
    assert_eq!(
        render(None, b"").unwrap_err().0,
        "nothing to post: the body is empty"
    );
}

#[test]
fn too_long_once_rendered() {
    let fits = "x".repeat(MAX_RENDERED_BYTES - 2);
    assert!(render(Some("text/plain"), fits.as_bytes()).is_ok());
    let plain = "x".repeat(MAX_RENDERED_BYTES);
    assert_eq!(
        render(Some("text/plain"), plain.as_bytes()).unwrap_err().0,
        format!(
            "the message is too long once rendered (60002 bytes, at most {MAX_RENDERED_BYTES})"
        )
    );
    // Formatting that fits as text may not fit as text plus HTML.
    let bold = format!("*{}*", "y".repeat(MAX_RENDERED_BYTES / 2));
    assert!(json_error(json!({"text": bold})).starts_with("the message is too long once rendered"));
}
