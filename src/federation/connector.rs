//! Every outgoing TCP connection (federation, `.well-known`, SRV targets, media `Location`s, push
//! gateways, identity servers) is opened here: the host is resolved (an IP literal stands for
//! itself), each address is checked against `[network]` ([`AddressPolicy`]) and only permitted
//! addresses are connected to. The check is on the address actually connected to, so a name that
//! resolves (or later re-resolves: DNS rebinding) to a private address is refused.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use super::ip_ranges::AddressPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error(
        "{0} resolves only to addresses outgoing connections may not reach (network.deny_ranges)"
    )]
    Denied(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
}

pub struct Connector {
    policy: AddressPolicy,
}

impl Connector {
    pub fn new(policy: AddressPolicy) -> Self {
        Self { policy }
    }

    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// A TCP connection to `host` (a name, or an IP address without brackets) on `port`, on the
    /// first permitted address that answers.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, ConnectError> {
        let what = format!("{host}:{port}");
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| ConnectError::Resolve(what.clone()))?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(ConnectError::Resolve(what));
        }
        let permitted: Vec<SocketAddr> = addresses
            .iter()
            .copied()
            .filter(|a| self.policy.permits(a.ip()))
            .collect();
        if permitted.is_empty() {
            tracing::warn!(
                "outgoing connection to {what} refused: its addresses {addresses:?} are in network.deny_ranges"
            );
            return Err(ConnectError::Denied(what));
        }
        let mut last_error = String::new();
        for address in permitted {
            match TcpStream::connect(address).await {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last_error = format!("{address}: {e}"),
            }
        }
        Err(ConnectError::Connect(what, last_error))
    }
}
