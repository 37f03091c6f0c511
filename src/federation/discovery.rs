//! Server discovery (spec: "Resolving server names"): where to connect for a server name, with
//! which `Host` header and which name the certificate must carry. The rules are pure functions;
//! [`resolve`] runs them with the network steps (`.well-known`, SRV).

use std::net::IpAddr;

use ruma::ServerName;

pub const DEFAULT_PORT: u16 = 8448;

/// Where to send requests for a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Host name or IP address to connect to.
    pub host: String,
    pub port: u16,
    /// The `Host` header of requests.
    pub host_header: String,
    /// The name the server's certificate must be valid for (an IP address for IP literals).
    pub tls_name: String,
}

/// The next step of resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Known without asking the network.
    Direct(Destination),
    /// A host name without a port: ask `https://{hostname}/.well-known/matrix/server`.
    WellKnown { hostname: String },
    /// Look up SRV records for `hostname` (`_matrix-fed._tcp`, then `_matrix._tcp`); without
    /// any, use `hostname:8448`. `Host` and the certificate name stay `hostname`.
    Srv { hostname: String },
}

/// Splits `host[:port]` (IPv6 literals in brackets). None when the port is not a number.
pub fn split_host_port(name: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = name.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return match after {
            "" => Some((ip, None)),
            _ => Some((ip, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match name.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((name, None)),
    }
}

fn ip_literal(host: &str) -> Option<IpAddr> {
    host.parse().ok()
}

/// Steps 1 and 2 for a server name, and step 3 (well-known) for host names without a port.
pub fn plan_for_server_name(name: &ServerName) -> Plan {
    let Some((host, port)) = split_host_port(name.as_str()) else {
        // ruma validated the name: unreachable in practice.
        return Plan::Direct(Destination {
            host: name.to_string(),
            port: DEFAULT_PORT,
            host_header: name.to_string(),
            tls_name: name.to_string(),
        });
    };
    if let Some(ip) = ip_literal(host) {
        return Plan::Direct(Destination {
            host: ip.to_string(),
            port: port.unwrap_or(DEFAULT_PORT),
            host_header: name.to_string(),
            tls_name: ip.to_string(),
        });
    }
    match port {
        Some(port) => Plan::Direct(Destination {
            host: host.to_owned(),
            port,
            host_header: name.to_string(),
            tls_name: host.to_owned(),
        }),
        None => Plan::WellKnown {
            hostname: host.to_owned(),
        },
    }
}

/// Step 3, once `.well-known` named a delegated server: its IP literal or explicit port is used
/// directly; otherwise SRV on the delegated host name.
pub fn plan_for_delegated(delegated: &str) -> Option<Plan> {
    let (host, port) = split_host_port(delegated)?;
    if host.is_empty() {
        return None;
    }
    if let Some(ip) = ip_literal(host) {
        return Some(Plan::Direct(Destination {
            host: ip.to_string(),
            port: port.unwrap_or(DEFAULT_PORT),
            host_header: delegated.to_owned(),
            tls_name: ip.to_string(),
        }));
    }
    Some(match port {
        Some(port) => Plan::Direct(Destination {
            host: host.to_owned(),
            port,
            host_header: delegated.to_owned(),
            tls_name: host.to_owned(),
        }),
        None => Plan::Srv {
            hostname: host.to_owned(),
        },
    })
}

/// Reads the `m.server` of a `.well-known/matrix/server` answer.
pub fn parse_well_known(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let server = value.get("m.server")?.as_str()?;
    <&ServerName>::try_from(server).ok()?;
    Some(server.to_owned())
}

/// A destination found through an SRV record of `hostname`.
pub fn srv_destination(hostname: &str, target: &str, port: u16) -> Destination {
    Destination {
        host: target.trim_end_matches('.').to_owned(),
        port,
        host_header: hostname.to_owned(),
        tls_name: hostname.to_owned(),
    }
}

/// The last step: `hostname:8448`.
pub fn default_destination(hostname: &str) -> Destination {
    Destination {
        host: hostname.to_owned(),
        port: DEFAULT_PORT,
        host_header: hostname.to_owned(),
        tls_name: hostname.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str) -> Plan {
        plan_for_server_name(<&ServerName>::try_from(name).unwrap())
    }

    fn dest(host: &str, port: u16, host_header: &str, tls_name: &str) -> Destination {
        Destination {
            host: host.into(),
            port,
            host_header: host_header.into(),
            tls_name: tls_name.into(),
        }
    }

    #[test]
    fn ip_literals_are_contacted_directly() {
        assert_eq!(
            plan("127.0.0.1"),
            Plan::Direct(dest("127.0.0.1", 8448, "127.0.0.1", "127.0.0.1"))
        );
        assert_eq!(
            plan("127.0.0.1:8450"),
            Plan::Direct(dest("127.0.0.1", 8450, "127.0.0.1:8450", "127.0.0.1"))
        );
        assert_eq!(
            plan("[::1]:8450"),
            Plan::Direct(dest("::1", 8450, "[::1]:8450", "::1"))
        );
        assert_eq!(
            plan("[::1]"),
            Plan::Direct(dest("::1", 8448, "[::1]", "::1"))
        );
    }

    #[test]
    fn explicit_ports_are_used_with_the_host_name() {
        assert_eq!(
            plan("matrix.example.org:8449"),
            Plan::Direct(dest(
                "matrix.example.org",
                8449,
                "matrix.example.org:8449",
                "matrix.example.org"
            ))
        );
    }

    #[test]
    fn host_names_without_port_ask_well_known() {
        assert_eq!(
            plan("example.org"),
            Plan::WellKnown {
                hostname: "example.org".into()
            }
        );
    }

    #[test]
    fn delegation_rules() {
        assert_eq!(
            plan_for_delegated("10.0.0.1:9000"),
            Some(Plan::Direct(dest(
                "10.0.0.1",
                9000,
                "10.0.0.1:9000",
                "10.0.0.1"
            )))
        );
        assert_eq!(
            plan_for_delegated("10.0.0.1"),
            Some(Plan::Direct(dest("10.0.0.1", 8448, "10.0.0.1", "10.0.0.1")))
        );
        assert_eq!(
            plan_for_delegated("fed.example.org:443"),
            Some(Plan::Direct(dest(
                "fed.example.org",
                443,
                "fed.example.org:443",
                "fed.example.org"
            )))
        );
        assert_eq!(
            plan_for_delegated("fed.example.org"),
            Some(Plan::Srv {
                hostname: "fed.example.org".into()
            })
        );
        assert_eq!(plan_for_delegated("fed.example.org:x"), None);
        assert_eq!(plan_for_delegated(""), None);
    }

    #[test]
    fn srv_and_default_keep_the_host_name_for_host_and_certificate() {
        assert_eq!(
            srv_destination("example.org", "fed1.example.net.", 8443),
            dest("fed1.example.net", 8443, "example.org", "example.org")
        );
        assert_eq!(
            default_destination("example.org"),
            dest("example.org", 8448, "example.org", "example.org")
        );
    }

    #[test]
    fn well_known_answers() {
        assert_eq!(
            parse_well_known(br#"{"m.server":"fed.example.org:443"}"#),
            Some("fed.example.org:443".into())
        );
        assert_eq!(parse_well_known(br#"{"m.server":"not a server"}"#), None);
        assert_eq!(parse_well_known(br#"{"m.server":5}"#), None);
        assert_eq!(parse_well_known(b"<html>"), None);
    }
}
