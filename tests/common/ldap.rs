//! A real OpenLDAP directory (Debian's `slapd`, installed by `scripts/ensure-system.sh --tests`)
//! on loopback, loaded from `tests/ldap/directory.ldif`, with plain/StartTLS and ldaps listeners
//! whose certificate a test CA signs.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use ldap3::{LdapConnAsync, Mod};

use super::federation::free_port;

pub const BASE: &str = "ou=people,dc=example,dc=org";
pub const GROUP: &str = "cn=matrix,ou=groups,dc=example,dc=org";
pub const SERVICE_DN: &str = "cn=parvis,ou=services,dc=example,dc=org";
pub const SERVICE_PASSWORD: &str = "service-secret";
const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
const ROOT_PASSWORD: &str = "admin-secret";

pub struct Slapd {
    child: Child,
    /// `ldap://127.0.0.1:port` (plain or StartTLS).
    pub ldap_uri: String,
    /// `ldaps://127.0.0.1:port`.
    pub ldaps_uri: String,
    /// The PEM of the CA that signed the listener's certificate.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// A CA and a certificate it signs for localhost and 127.0.0.1: (CA PEM, cert PEM, key PEM).
pub fn certificates() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Parvis test directory CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

impl Slapd {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (ca, cert, key) = certificates();
        std::fs::write(root.join("ca.pem"), ca).unwrap();
        std::fs::write(root.join("server.pem"), cert).unwrap();
        std::fs::write(root.join("server.key"), key).unwrap();
        std::fs::create_dir(root.join("db")).unwrap();
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ldap");
        let conf = std::fs::read_to_string(here.join("slapd.conf"))
            .unwrap()
            .replace("DIR", root.to_str().unwrap());
        let conf_path = root.join("slapd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let loaded = Command::new("/usr/sbin/slapadd")
            .arg("-f")
            .arg(&conf_path)
            .arg("-l")
            .arg(here.join("directory.ldif"))
            .output()
            .expect("slapadd runs (scripts/ensure-system.sh --tests installs slapd)");
        assert!(
            loaded.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
        let (plain, tls) = (free_port(), free_port());
        let ldap_uri = format!("ldap://127.0.0.1:{plain}");
        let ldaps_uri = format!("ldaps://127.0.0.1:{tls}");
        // -d: in the foreground (a child of the test), logging nothing but errors.
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(&conf_path)
            .arg("-h")
            .arg(format!("{ldap_uri}/ {ldaps_uri}/"))
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("slapd starts");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", plain)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", tls)).is_err()
        {
            assert!(Instant::now() < deadline, "slapd did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            ldap_uri,
            ldaps_uri,
            ca_file: root.join("ca.pem"),
            _dir: dir,
        }
    }

    async fn admin(&self) -> ldap3::Ldap {
        let (conn, mut ldap) = LdapConnAsync::new(&self.ldap_uri).await.unwrap();
        ldap3::drive!(conn);
        ldap.simple_bind(ROOT_DN, ROOT_PASSWORD)
            .await
            .unwrap()
            .success()
            .unwrap();
        ldap
    }

    /// Takes `uid` out of the Matrix group.
    pub async fn remove_from_group(&self, uid: &str) {
        let mut ldap = self.admin().await;
        let member = format!("uid={uid},{BASE}");
        ldap.modify(GROUP, vec![Mod::Delete("member", [member.as_str()].into())])
            .await
            .unwrap()
            .success()
            .unwrap();
        ldap.unbind().await.unwrap();
    }

    /// Deletes `uid`'s entry (the person left the company).
    pub async fn delete_user(&self, uid: &str) {
        let mut ldap = self.admin().await;
        ldap.delete(&format!("uid={uid},{BASE}"))
            .await
            .unwrap()
            .success()
            .unwrap();
        ldap.unbind().await.unwrap();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
