//! A real OpenID provider for the tests: node-oidc-provider (`tests/oidc/provider.mjs`, its npm
//! packages pinned in `tests/oidc/package-lock.json`, installed by `scripts/test.sh` or here on
//! first use), and a minimal browser: cookies per host, redirects followed, forms submitted.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use reqwest::{StatusCode, header};

use super::federation::free_port;

pub const CLIENT_ID: &str = "parvis";
pub const CLIENT_SECRET: &str = "parvis-test-client-secret";

static INSTALL: Mutex<()> = Mutex::new(());

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// `npm ci` when `node_modules` is missing (tests of one binary run in parallel: one installs).
fn ensure_installed() -> PathBuf {
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let node = here().join("node_modules/.bin/node");
    if !node.exists() || !here().join("node_modules/oidc-provider").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(here())
            .status()
            .expect("npm runs (scripts/ensure-system.sh installs it)");
        assert!(status.success(), "npm ci in tests/oidc failed");
    }
    node
}

pub struct OidcProvider {
    child: Child,
    pub issuer: String,
}

impl OidcProvider {
    /// Starts the provider with one client whose redirect URI is `callback` and whose
    /// back-channel logout URI is `backchannel`.
    pub fn start(callback: &str, backchannel: &str) -> Self {
        let node = ensure_installed();
        let port = free_port();
        let client = serde_json::json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [callback],
            "backchannel_logout_uri": backchannel,
        });
        let mut child = Command::new(node)
            .arg(here().join("provider.mjs"))
            .arg(port.to_string())
            .arg(client.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the OpenID provider started");
        // The provider logs on (failed back-channel logouts): read it, or its writes fail (EPIPE)
        // and it stops. Shown with the output of a failing test.
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                eprintln!("oidc-provider: {line}");
            }
        });
        Self {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer the browser got.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The `action` of the page's first form, absolute.
    pub fn form_action(&self) -> String {
        let start = self.body.find("action=\"").expect("a form") + 8;
        let end = start + self.body[start..].find('"').unwrap();
        absolute(&self.url, &self.body[start..end].replace("&amp;", "&"))
    }

    /// The `href` of the first link that contains `needle`, absolute.
    pub fn link_with(&self, needle: &str) -> String {
        let at = self
            .body
            .match_indices("href=\"")
            .map(|(i, _)| i + 6)
            .find(|i| self.body[*i..].split('"').next().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("a link with {needle} in {}", self.body));
        let href = self.body[at..].split('"').next().unwrap();
        absolute(&self.url, &href.replace("&amp;", "&"))
    }

    /// The value of the hidden input `name`.
    pub fn input(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\""))?;
        let tag_start = self.body[..at].rfind('<')?;
        let tag = &self.body[tag_start..at + self.body[at..].find('>')?];
        let v = tag.find("value=\"")? + 7;
        Some(tag[v..].split('"').next()?.to_owned())
    }
}

fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

fn absolute(base: &str, href: &str) -> String {
    if href.starts_with("http://") || href.starts_with("https://") {
        href.to_owned()
    } else {
        format!("{}{href}", origin(base))
    }
}

/// Cookies per origin (paths and expiry beyond Max-Age=0 ignored: enough for these flows).
#[derive(Default)]
pub struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, HashMap<String, String>>,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, url: &str, form: Option<&[(&str, &str)]>) -> Page {
        let jar = self.cookies.entry(origin(url).to_owned()).or_default();
        let cookie = jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut request = match form {
            Some(fields) => self.http.post(url).form(fields),
            None => self.http.get(url),
        };
        if !cookie.is_empty() {
            request = request.header(header::COOKIE, cookie);
        }
        let response = request.send().await.expect("the request is answered");
        for set in response.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let expired = attributes.to_ascii_lowercase().contains("max-age=0") || value.is_empty();
            if expired {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| absolute(url, l.to_str().unwrap()));
        Page {
            url: url.to_owned(),
            status,
            location,
            body: response.text().await.unwrap_or_default(),
        }
    }

    /// GETs `url` and follows redirects, except to a URL that starts with `stop` (the client's
    /// redirect URL, which does not exist): that last redirect is the answer.
    pub async fn get(&mut self, url: &str, stop: &str) -> Page {
        let page = self.send(url, None).await;
        self.follow(page, stop).await
    }

    /// POSTs a form and follows redirects as [`Browser::get`].
    pub async fn post(&mut self, url: &str, fields: &[(&str, &str)], stop: &str) -> Page {
        let page = self.send(url, Some(fields)).await;
        self.follow(page, stop).await
    }

    async fn follow(&mut self, mut page: Page, stop: &str) -> Page {
        for _ in 0..20 {
            match &page.location {
                Some(next) if page.status.is_redirection() && !next.starts_with(stop) => {
                    let next = next.clone();
                    page = self.send(&next, None).await;
                }
                _ => return page,
            }
        }
        panic!("too many redirects: {page:?}");
    }

    /// Signs in at the provider's development login form as `login` and grants consent when
    /// asked; follows on to wherever the provider sends the browser back.
    pub async fn provider_login(&mut self, mut page: Page, login: &str, stop: &str) -> Page {
        for _ in 0..4 {
            if page.body.contains("name=\"prompt\" value=\"login\"") {
                let action = page.form_action();
                page = self
                    .post(
                        &action,
                        &[("prompt", "login"), ("login", login), ("password", "any")],
                        stop,
                    )
                    .await;
            } else if page.body.contains("name=\"prompt\" value=\"consent\"") {
                let action = page.form_action();
                page = self.post(&action, &[("prompt", "consent")], stop).await;
            } else {
                return page;
            }
        }
        page
    }

    /// Ends the browser's session at the provider (its logout page, "yes"): the provider then
    /// sends back-channel logouts to the clients of the session.
    pub async fn provider_logout(&mut self, issuer: &str) -> Page {
        let page = self.get(&format!("{issuer}/session/end"), "\u{0}").await;
        let xsrf = page.input("xsrf").expect("the logout form's xsrf");
        let action = page.form_action();
        self.post(&action, &[("xsrf", &xsrf), ("logout", "yes")], "\u{0}")
            .await
    }
}
