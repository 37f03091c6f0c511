//! A real SMTP server for the tests: aiosmtpd (`tests/smtp/sink.py`, pinned in
//! `tests/smtp/requirements.txt`, in the virtualenv `$HOME/.cache/parvis-smtp-venv` that
//! `scripts/test.sh` makes, or this module when it is missing) on loopback. It requires STARTTLS
//! with a certificate a test CA signs, and AUTH, and keeps each mail it takes in a folder.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use super::federation::free_port;

pub const USER: &str = "parvis-mailer";
pub const PASSWORD: &str = "smtp-secret";

static INSTALL: Mutex<()> = Mutex::new(());

fn venv() -> PathBuf {
    std::env::var_os("PARVIS_SMTP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/parvis-smtp-venv")
        })
}

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp")
}

/// The virtualenv's python, with aiosmtpd installed.
fn python() -> PathBuf {
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let python = venv().join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(venv())
            .status()
            .unwrap();
        assert!(made.success(), "python3 -m venv");
        let installed = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(here().join("requirements.txt"))
            .status()
            .unwrap();
        assert!(
            installed.success(),
            "pip install -r tests/smtp/requirements.txt"
        );
    }
    python
}

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    /// The PEM of the CA that signed the server's certificate.
    pub ca_file: PathBuf,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = super::ldap::certificates();
        std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        let port = free_port();
        let mut child = Command::new(python())
            .arg(here().join("sink.py"))
            .arg(port.to_string())
            .arg(dir.path().join("mail"))
            .arg(dir.path().join("cert.pem"))
            .arg(dir.path().join("key.pem"))
            .args([USER, PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server started");
        Self {
            child,
            port,
            ca_file: dir.path().join("ca.pem"),
            dir,
        }
    }

    /// Every mail taken so far, oldest first.
    pub fn mails(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// Waits (at most 10 s) until `count` mails were taken; answers the last.
    pub async fn wait_for(&self, count: usize) -> String {
        let start = Instant::now();
        loop {
            let mails = self.mails();
            if mails.len() >= count {
                return mails[count - 1].clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mail {count} never came"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The first `http…` link in a mail's text (quoted-printable soft breaks undone).
pub fn link_in(mail: &str) -> String {
    let text = mail.replace("=\r\n", "").replace("=3D", "=");
    let start = text.find("http").expect("a link in the mail");
    text[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
