//! The content repository end to end: uploads and downloads on both endpoint families, async
//! uploads, size limits, thumbnails of real PNG and JPEG images, safe headers, restarts, and media
//! of another Parvis server fetched over federation.

mod common;

use std::{io::Cursor, path::Path, time::Duration};

use common::TestServer;

async fn start_federating(data: &Path) -> TestServer {
    common::federation::start(data).await.0
}
use image::{DynamicImage, ImageFormat};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

/// (status, headers, body bytes) of a raw request.
async fn raw(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    let mut req = server
        .http
        .request(method, format!("{}{}", server.base, path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some((content_type, bytes)) = body {
        req = req.header(header::CONTENT_TYPE, content_type).body(bytes);
    }
    let res = req.send().await.expect("request sent");
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.bytes().await.unwrap().to_vec())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// Uploads `bytes`; returns the `mxc://` URI.
async fn upload(
    server: &TestServer,
    token: &str,
    content_type: &str,
    filename: &str,
    bytes: Vec<u8>,
) -> String {
    let path = format!(
        "/_matrix/media/v3/upload?filename={}",
        common::enc(filename)
    );
    let (status, _, body) = raw(
        server,
        Method::POST,
        &path,
        Some(token),
        Some((content_type, bytes)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    json_of(&body)["content_uri"].as_str().unwrap().to_owned()
}

/// `server/media_id` of an `mxc://` URI.
fn mxc_path(uri: &str) -> String {
    uri.strip_prefix("mxc://").unwrap().to_owned()
}

async fn download(
    server: &TestServer,
    token: &str,
    uri: &str,
) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    raw(
        server,
        Method::GET,
        &format!("/_matrix/client/v1/media/download/{}", mxc_path(uri)),
        Some(token),
        None,
    )
    .await
}

async fn legacy_download(
    server: &TestServer,
    uri: &str,
) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    raw(
        server,
        Method::GET,
        &format!("/_matrix/media/v3/download/{}", mxc_path(uri)),
        None,
        None,
    )
    .await
}

fn image_bytes(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 128])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), format)
        .unwrap();
    out
}

/// Files in the content store (not counting interrupted writes).
fn stored_files(data: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        if e.file_name() == "tmp" {
                            0
                        } else {
                            walk(&e.path())
                        }
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    walk(&data.join("media"))
}

#[tokio::test]
async fn upload_download_byte_identical_on_both_endpoint_families() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.media.freeze_legacy = false;
    let server = TestServer::start_with(config).await;
    let (_, token) = server.register("alice").await;
    // Larger than the 1 MiB limit of other requests and axum's default 2 MiB.
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let uri = upload(
        &server,
        &token,
        "application/octet-stream",
        "data.bin",
        bytes.clone(),
    )
    .await;
    assert!(uri.starts_with("mxc://test.local/"), "{uri}");

    let (status, headers, body) = download(&server, &token, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, bytes);
    assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
    let (status, _, body) = legacy_download(&server, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, bytes);
    // The named form; the authenticated one needs a token.
    let path = format!(
        "/_matrix/client/v1/media/download/{}/other.bin",
        mxc_path(&uri)
    );
    let (status, headers, body) = raw(&server, Method::GET, &path, Some(&token), None).await;
    assert_eq!((status, body.len()), (StatusCode::OK, bytes.len()));
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=other.bin"
    );
    let (status, _, body) = raw(
        &server,
        Method::GET,
        &format!("/_matrix/client/v1/media/download/{}", mxc_path(&uri)),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_MISSING_TOKEN"))
    );
    // Unknown and malformed ids.
    let (status, _, body) = download(&server, &token, "mxc://test.local/doesnotexist").await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_NOT_FOUND"))
    );
    // Both config endpoints give the limit.
    let limit = server.get("/_matrix/client/v1/media/config", &token).await;
    assert_eq!(limit["m.upload.size"], json!(50 << 20));
    assert_eq!(server.get("/_matrix/media/v3/config", &token).await, limit);
    // preview_url is not served.
    let (status, _, body) = raw(
        &server,
        Method::GET,
        "/_matrix/client/v1/media/preview_url?url=https%3A%2F%2Fexample.org",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_UNRECOGNIZED"))
    );
    server.stop().await;
}

#[tokio::test]
async fn frozen_legacy_endpoints_serve_only_media_from_before_the_freeze_and_restart_keeps_media() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.media.freeze_legacy = false;
    let server = TestServer::start_with(config).await;
    let (_, token) = server.register("alice").await;
    let before = upload(
        &server,
        &token,
        "text/plain",
        "before.txt",
        b"from before the freeze".to_vec(),
    )
    .await;
    server.stop().await;

    // Restarted with the default configuration: legacy access frozen.
    let server = TestServer::start(dir.path()).await;
    let after = upload(
        &server,
        &token,
        "text/plain",
        "after.txt",
        b"from after the freeze".to_vec(),
    )
    .await;
    let (status, _, body) = legacy_download(&server, &before).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"from before the freeze"[..])
    );
    let (status, _, body) = legacy_download(&server, &after).await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_NOT_FOUND"))
    );
    let path = format!(
        "/_matrix/media/v3/thumbnail/{}?width=32&height=32",
        mxc_path(&after)
    );
    let (status, _, _) = raw(&server, Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = download(&server, &token, &after).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"from after the freeze"[..])
    );
    server.stop().await;

    // Everything acknowledged is still there after another restart.
    let server = TestServer::start(dir.path()).await;
    for (uri, text) in [
        (&before, "from before the freeze"),
        (&after, "from after the freeze"),
    ] {
        let (status, _, body) = download(&server, &token, uri).await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, text.as_bytes()));
    }
    server.stop().await;
}

#[tokio::test]
async fn async_upload_create_then_put_once_by_its_creator() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.media.max_pending_uploads = 2;
    let server = TestServer::start_with(config).await;
    let (_, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;

    let created = server
        .post("/_matrix/media/v1/create", &alice, json!({}))
        .await;
    let uri = created["content_uri"].as_str().unwrap().to_owned();
    let expires = created["unused_expires_at"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        expires > now + 23 * 3600 * 1000 && expires <= now + 24 * 3600 * 1000 + 5000,
        "{expires}"
    );

    // Not uploaded yet: 504 M_NOT_YET_UPLOADED after timeout_ms.
    let path = format!(
        "/_matrix/client/v1/media/download/{}?timeout_ms=100",
        mxc_path(&uri)
    );
    let (status, _, body) = raw(&server, Method::GET, &path, Some(&alice), None).await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::GATEWAY_TIMEOUT, Some("M_NOT_YET_UPLOADED"))
    );

    // A download waiting for the upload gets it as soon as it is done.
    let waiting = {
        let http = server.http.clone();
        let url = format!(
            "{}/_matrix/client/v1/media/download/{}?timeout_ms=10000",
            server.base,
            mxc_path(&uri)
        );
        let token = alice.clone();
        tokio::spawn(async move {
            let res = http.get(url).bearer_auth(token).send().await.unwrap();
            (res.status(), res.bytes().await.unwrap().to_vec())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let put_path = format!(
        "/_matrix/media/v3/upload/{}?filename=late.txt",
        mxc_path(&uri)
    );
    let (status, _, body) = raw(
        &server,
        Method::PUT,
        &put_path,
        Some(&bob),
        Some(("text/plain", b"bob's".to_vec())),
    )
    .await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN"))
    );
    let (status, _, body) = raw(
        &server,
        Method::PUT,
        &put_path,
        Some(&alice),
        Some(("text/plain", b"late content".to_vec())),
    )
    .await;
    assert_eq!((status, json_of(&body)), (StatusCode::OK, json!({})));
    let (status, body) = waiting.await.unwrap();
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"late content"[..])
    );
    let (status, _, body) = raw(
        &server,
        Method::PUT,
        &put_path,
        Some(&alice),
        Some(("text/plain", b"again".to_vec())),
    )
    .await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::CONFLICT, Some("M_CANNOT_OVERWRITE_MEDIA"))
    );
    let (status, headers, body) = download(&server, &alice, &uri).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"late content"[..])
    );
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "inline; filename=late.txt"
    );

    // A URI we never created.
    let (status, _, body) = raw(
        &server,
        Method::PUT,
        "/_matrix/media/v3/upload/test.local/nosuchmedia",
        Some(&alice),
        Some(("text/plain", b"x".to_vec())),
    )
    .await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_NOT_FOUND"))
    );

    // At most two pending uploads per user.
    server
        .post("/_matrix/media/v1/create", &alice, json!({}))
        .await;
    server
        .post("/_matrix/media/v1/create", &alice, json!({}))
        .await;
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/media/v1/create",
            Some(&alice),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("M_LIMIT_EXCEEDED"))
    );
    assert!(body["retry_after_ms"].as_u64().unwrap() > 0);
    // Bob has his own allowance.
    server
        .post("/_matrix/media/v1/create", &bob, json!({}))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn too_large_uploads_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.media.max_upload_bytes = 1000;
    let server = TestServer::start_with(config).await;
    let (_, token) = server.register("alice").await;
    let (status, _, body) = raw(
        &server,
        Method::POST,
        "/_matrix/media/v3/upload",
        Some(&token),
        Some(("application/octet-stream", vec![7; 1001])),
    )
    .await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("M_TOO_LARGE"))
    );
    assert_eq!(stored_files(dir.path()), 0);

    let created = server
        .post("/_matrix/media/v1/create", &token, json!({}))
        .await;
    let uri = created["content_uri"].as_str().unwrap().to_owned();
    let put_path = format!("/_matrix/media/v3/upload/{}", mxc_path(&uri));
    let (status, _, body) = raw(
        &server,
        Method::PUT,
        &put_path,
        Some(&token),
        Some(("application/octet-stream", vec![7; 5000])),
    )
    .await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("M_TOO_LARGE"))
    );
    assert_eq!(stored_files(dir.path()), 0);
    // The URI still waits for its content, which may still come.
    let path = format!(
        "/_matrix/client/v1/media/download/{}?timeout_ms=0",
        mxc_path(&uri)
    );
    let (status, _, _) = raw(&server, Method::GET, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let (status, _, _) = raw(
        &server,
        Method::PUT,
        &put_path,
        Some(&token),
        Some(("application/octet-stream", vec![7; 1000])),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored_files(dir.path()), 1);
    server.stop().await;
}

async fn thumbnail(
    server: &TestServer,
    token: &str,
    uri: &str,
    query: &str,
) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    let path = format!(
        "/_matrix/client/v1/media/thumbnail/{}?{query}",
        mxc_path(uri)
    );
    raw(server, Method::GET, &path, Some(token), None).await
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).expect("a decodable thumbnail");
    (img.width(), img.height())
}

#[tokio::test]
async fn thumbnails_of_png_and_jpeg_have_the_requested_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, token) = server.register("alice").await;
    let png = upload(
        &server,
        &token,
        "image/png",
        "wide.png",
        image_bytes(1000, 500, ImageFormat::Png),
    )
    .await;
    let jpeg = upload(
        &server,
        &token,
        "image/jpeg",
        "photo.jpg",
        image_bytes(1600, 1200, ImageFormat::Jpeg),
    )
    .await;

    let (status, headers, body) =
        thumbnail(&server, &token, &png, "width=96&height=96&method=crop").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(dimensions(&body), (96, 96));
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "inline; filename=thumbnail.png"
    );
    let (_, _, body) = thumbnail(&server, &token, &png, "width=32&height=32&method=crop").await;
    assert_eq!(dimensions(&body), (32, 32));
    let (_, _, body) = thumbnail(&server, &token, &png, "width=300&height=200&method=scale").await;
    assert_eq!(dimensions(&body), (320, 160));
    // The default method is scale.
    let (_, _, body) = thumbnail(&server, &token, &png, "width=640&height=480&animated=true").await;
    assert_eq!(dimensions(&body), (640, 320));

    let (status, headers, body) =
        thumbnail(&server, &token, &jpeg, "width=640&height=480&method=scale").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(dimensions(&body), (640, 480));
    let (_, _, body) = thumbnail(&server, &token, &jpeg, "width=800&height=600&method=scale").await;
    assert_eq!(dimensions(&body), (800, 600));
    let (_, _, again) =
        thumbnail(&server, &token, &jpeg, "width=700&height=500&method=scale").await;
    assert_eq!(
        again, body,
        "the stored 800x600 thumbnail answers a 700x500 request"
    );

    // Not an image: the spec's 400.
    let text = upload(
        &server,
        &token,
        "text/plain",
        "a.txt",
        b"not an image".to_vec(),
    )
    .await;
    let (status, _, body) =
        thumbnail(&server, &token, &text, "width=32&height=32&method=crop").await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_UNKNOWN"))
    );
    let (status, _, _) = thumbnail(&server, &token, &png, "width=0&height=32").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Generated once and stored: two originals, six thumbnails (four sizes of the PNG, two of the
    // JPEG: the 700x500 request reused the 800x600 one), the text.
    assert_eq!(stored_files(dir.path()), 2 + 6 + 1);
    server.stop().await;
}

#[tokio::test]
async fn downloads_carry_safe_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, token) = server.register("alice").await;
    let html = upload(
        &server,
        &token,
        "text/html",
        "page \"one\".html",
        b"<script>alert(1)</script>".to_vec(),
    )
    .await;
    let png = upload(
        &server,
        &token,
        "image/png",
        "résumé.png",
        image_bytes(4, 4, ImageFormat::Png),
    )
    .await;
    let (_, headers, _) = download(&server, &token, &html).await;
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"page \\\"one\\\".html\""
    );
    assert_eq!(headers[header::CONTENT_TYPE], "text/html");
    let (_, headers, _) = download(&server, &token, &png).await;
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "inline; filename*=utf-8''r%C3%A9sum%C3%A9.png"
    );
    for (_, headers, _) in [
        download(&server, &token, &html).await,
        thumbnail(&server, &token, &png, "width=32&height=32").await,
    ] {
        assert_eq!(
            headers["content-security-policy"],
            "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cross-origin-resource-policy"], "cross-origin");
    }
    server.stop().await;
}

#[tokio::test]
async fn remote_media_is_fetched_over_federation_and_cached() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_federating(dir_a.path()).await;
    let b = start_federating(dir_b.path()).await;
    let (_, alice) = a.register("alice").await;
    let (_, bob) = b.register("bob").await;
    let bytes = image_bytes(1000, 500, ImageFormat::Png);
    let uri = upload(&a, &alice, "image/png", "remote.png", bytes.clone()).await;
    let text = upload(
        &a,
        &alice,
        "text/plain",
        "notes.txt",
        b"remote notes".to_vec(),
    )
    .await;

    // A thumbnail first: made by the origin, asked over federation.
    let (status, headers, body) = thumbnail(&b, &bob, &uri, "width=96&height=96&method=crop").await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(dimensions(&body), (96, 96));

    let (status, headers, body) = download(&b, &bob, &uri).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, bytes);
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "inline; filename=remote.png"
    );
    let (status, headers, body) = download(&b, &bob, &text).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"remote notes"[..])
    );
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain");
    // Unknown remote media.
    let missing = format!(
        "mxc://{}/nosuchmedia",
        uri.strip_prefix("mxc://")
            .unwrap()
            .split('/')
            .next()
            .unwrap()
    );
    let (status, _, body) = download(&b, &bob, &missing).await;
    assert_eq!(
        (status, json_of(&body)["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_NOT_FOUND"))
    );

    // Cached: served with the origin gone, thumbnails made from the cached original.
    a.stop().await;
    let (status, _, body) = download(&b, &bob, &uri).await;
    assert_eq!((status, body), (StatusCode::OK, bytes));
    let (status, _, body) = thumbnail(&b, &bob, &uri, "width=320&height=240&method=scale").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dimensions(&body), (320, 160));
    // Other servers' media is not served over federation by B (only its own).
    b.stop().await;
}

/// A peer of an older kind, on TLS: no federation media endpoints (404 `M_UNRECOGNIZED`), the legacy
/// ones instead; one media id whose federation answer is a `Location` to follow.
async fn start_old_peer(data: &Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    use axum::{
        extract::{Path as UrlPath, RawQuery},
        response::IntoResponse,
        routing::get,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let name = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut config = common::config(data);
    config.server_name = name.clone().try_into().unwrap();
    let tls = parvis::federation::tls::server_config(&config).unwrap();
    let unrecognized = || {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})),
        )
    };
    let location_target = format!("https://{name}/files/located");
    // The same file on another host name of the same address: not followed.
    let elsewhere_target = format!(
        "https://localhost:{}/files/located",
        name.rsplit_once(':').unwrap().1
    );
    let app = axum::Router::new()
        .route(
            "/_matrix/federation/v1/media/download/{id}",
            get(move |UrlPath(id): UrlPath<String>| async move {
                let target = match id.as_str() {
                    "located" => &location_target,
                    "elsewhere" => &elsewhere_target,
                    _ => return unrecognized().into_response(),
                };
                let body = format!("--xyz\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--xyz\r\nLocation: {target}\r\n\r\n\r\n--xyz--");
                ([(header::CONTENT_TYPE, "multipart/mixed; boundary=xyz")], body).into_response()
            }),
        )
        .route("/_matrix/federation/v1/media/thumbnail/{id}", get(move || async move { unrecognized() }))
        .route(
            "/_matrix/media/v3/download/{server}/{id}",
            get(|RawQuery(query): RawQuery| async move {
                assert!(query.unwrap_or_default().contains("allow_remote=false"));
                ([(header::CONTENT_TYPE, "text/plain"), (header::CONTENT_DISPOSITION, "attachment; filename=old.txt")], "from the legacy endpoint")
            }),
        )
        .route(
            "/_matrix/media/v3/thumbnail/{server}/{id}",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], image_bytes(32, 32, ImageFormat::Png)) }),
        )
        .route("/files/located", get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "from the location") }));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(parvis::federation::listener::serve(
        listener, tls, app, stopped,
    ));
    (name, stop)
}

#[tokio::test]
async fn remote_media_falls_back_to_legacy_endpoints_and_follows_locations() {
    let (dir_peer, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (peer, stop_peer) = start_old_peer(dir_peer.path()).await;
    let b = start_federating(dir_b.path()).await;
    let (_, bob) = b.register("bob").await;

    let (status, headers, body) = download(&b, &bob, &format!("mxc://{peer}/oldmedia")).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"from the legacy endpoint"[..]),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "inline; filename=old.txt"
    );
    let (status, _, body) = download(&b, &bob, &format!("mxc://{peer}/located")).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"from the location"[..]),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // A Location on another host is not followed (502), and the client is not told why.
    let (status, _, body) = download(&b, &bob, &format!("mxc://{peer}/elsewhere")).await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        !String::from_utf8_lossy(&body).contains("localhost"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, headers, body) = thumbnail(
        &b,
        &bob,
        &format!("mxc://{peer}/otherimage"),
        "width=32&height=32&method=crop",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(dimensions(&body), (32, 32));

    // Cached: the peer is gone, the media is still served.
    let _ = stop_peer.send(());
    let (status, _, body) = download(&b, &bob, &format!("mxc://{peer}/oldmedia")).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"from the legacy endpoint"[..])
    );
    b.stop().await;
}

/// Sizes of the files in `media/tmp` (uploads being received).
fn temp_files(data: &Path) -> Vec<u64> {
    std::fs::read_dir(data.join("media").join("tmp"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts a chunked (no `Content-Length`) upload over a raw connection and sends `first`
/// (blocking: run off the runtime).
fn start_chunked_upload(addr: &str, token: &str, first: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /_matrix/media/v3/upload?filename=big.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    send_chunk(&mut stream, first);
    stream
}

fn send_chunk(stream: &mut std::net::TcpStream, bytes: &[u8]) {
    use std::io::Write;
    // The server may answer (and close) before everything is sent: errors are for the answer to tell.
    let _ = stream.write_all(format!("{:x}\r\n", bytes.len()).as_bytes());
    let _ = stream.write_all(bytes);
    let _ = stream.write_all(b"\r\n");
}

/// Ends the upload (when `last`) and reads the answer: (status, body).
fn finish_chunked_upload(mut stream: std::net::TcpStream, last: bool) -> (u16, Value) {
    use std::io::{Read, Write};
    if last {
        let _ = stream.write_all(b"0\r\n\r\n");
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // A chunked answer: the JSON is between the chunk size lines.
    let json = body
        .find('{')
        .and_then(|start| body.rfind('}').map(|end| &body[start..=end]))
        .unwrap_or("");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

async fn off_runtime<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// An upload is written to a temporary file while it is received (never whole in memory), then
/// moved into place; a chunked upload past the limit is refused with `M_TOO_LARGE` and leaves no
/// file at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_streamed_to_a_temporary_file_within_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.media.max_upload_bytes = 2 * 1024 * 1024;
    let server = TestServer::start_with(config).await;
    let (_, token) = server.register("alice").await;
    let content: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    let addr = server.base.strip_prefix("http://").unwrap().to_owned();

    // The first 600 KB are on disk before the rest is sent.
    let (a, t, first) = (addr.clone(), token.clone(), content[..600_000].to_vec());
    let mut stream = off_runtime(move || start_chunked_upload(&a, &t, &first)).await;
    let mut on_disk = 0;
    for _ in 0..100 {
        on_disk = temp_files(dir.path()).into_iter().max().unwrap_or(0);
        if on_disk >= 256 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        on_disk >= 256 * 1024,
        "the upload is written while it is received ({on_disk} bytes on disk)"
    );
    let rest = content[600_000..].to_vec();
    let (status, answer) = off_runtime(move || {
        send_chunk(&mut stream, &rest);
        finish_chunked_upload(stream, true)
    })
    .await;
    assert_eq!(status, 200, "{answer}");
    let uri = answer["content_uri"].as_str().unwrap().to_owned();
    let (status, _, downloaded) = download(&server, &token, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert!(downloaded == content, "byte-identical");
    assert_eq!(stored_files(dir.path()), 1);
    assert!(
        temp_files(dir.path()).is_empty(),
        "the temporary file was moved into place"
    );

    // Past the limit, without a Content-Length: refused while it is received, nothing kept.
    let (a, t, all) = (addr.clone(), token.clone(), content.clone());
    let (status, answer) = off_runtime(move || {
        let mut stream = start_chunked_upload(&a, &t, &all);
        send_chunk(&mut stream, &all);
        finish_chunked_upload(stream, false)
    })
    .await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (413, Some("M_TOO_LARGE")),
        "{answer}"
    );
    assert_eq!(stored_files(dir.path()), 1);
    for _ in 0..50 {
        if temp_files(dir.path()).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        temp_files(dir.path()).is_empty(),
        "no temporary file is left"
    );
    server.stop().await;
}
