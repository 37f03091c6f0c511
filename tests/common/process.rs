//! A `parvis` binary run as a child process, with fixed ports and data folder, restartable (for
//! tests of what only a real process shows: SIGKILL, the command line, the control socket).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use super::TestServer;
use super::federation::{eventually, free_port};

pub struct Proc {
    child: Option<Child>,
    pub dir: PathBuf,
    /// The data folder (`<dir>/data` unless changed before `start`).
    pub data: PathBuf,
    pub client_port: u16,
    pub fed_port: u16,
    starts: usize,
    /// More PARVIS_* settings.
    pub env: Vec<(String, String)>,
}

impl Proc {
    pub fn new(dir: &Path) -> Self {
        Self {
            child: None,
            dir: dir.to_owned(),
            data: dir.join("data"),
            client_port: free_port(),
            fed_port: free_port(),
            starts: 0,
            env: Vec::new(),
        }
    }

    /// The server name: the federation listener's address.
    pub fn name(&self) -> String {
        format!("127.0.0.1:{}", self.fed_port)
    }

    pub fn server(&self) -> TestServer {
        TestServer {
            server: None,
            base: format!("http://127.0.0.1:{}", self.client_port),
            http: reqwest::Client::new(),
        }
    }

    /// `parvis` with this process's settings, for a subcommand.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_parvis"));
        command
            .env("PARVIS_SERVER_NAME", self.name())
            .env(
                "PARVIS_LISTEN__CLIENT",
                format!("127.0.0.1:{}", self.client_port),
            )
            .env("PARVIS_STORAGE__PATH", &self.data)
            .env("PARVIS_RATE_LIMITS__ENABLED", "false")
            .env(
                "PARVIS_NETWORK__ALLOW_RANGES",
                r#"["127.0.0.0/8", "::1/128"]"#,
            )
            .env(
                "PARVIS_FEDERATION__LISTEN",
                format!("127.0.0.1:{}", self.fed_port),
            )
            .env("PARVIS_FEDERATION__VERIFY_CERTIFICATES", "false")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts `parvis serve` and waits until it answers.
    pub async fn start(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("log-{}.txt", self.starts))).unwrap();
        let child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("parvis starts");
        self.child = Some(child);
        let server = self.server();
        eventually("the server answers", || async {
            let res = server
                .http
                .get(format!("{}/_matrix/client/versions", server.base))
                .send()
                .await;
            res.is_ok_and(|r| r.status().is_success()).then_some(())
        })
        .await;
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, and waits for the clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            child.wait().unwrap();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
