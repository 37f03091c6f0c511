//! The address a request comes from, for the rate limits of unauthenticated requests: the TCP
//! peer, or, behind a reverse proxy, the last entry of the header it sets
//! (`listen.client_ip_header`, e.g. `X-Forwarded-For`; the entries before the last were written
//! by the client and prove nothing). IPv6 addresses count per /64, the block one host usually has.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::ConnectInfo;

/// The client's address, if known.
pub fn of(parts: &http::request::Parts, header: Option<&str>) -> Option<IpAddr> {
    let from_header = header.and_then(|name| {
        let last = parts.headers.get_all(name).iter().last()?;
        let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
        parse(entry)
    });
    from_header.or_else(|| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    })
}

/// An address as proxies write it: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]:443`, `1.2.3.4:80`.
fn parse(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The rate-limit bucket of an unauthenticated client.
pub fn bucket(address: Option<IpAddr>) -> String {
    match address.map(|a| a.to_canonical()) {
        Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!(
                "ip:{}/64",
                Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)
            )
        }
        None => "anonymous".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], peer: &str) -> http::request::Parts {
        let mut req = http::Request::builder();
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (mut parts, _) = req.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        parts
    }

    #[test]
    fn header_only_when_configured_and_its_last_entry() {
        let p = parts(
            &[("X-Forwarded-For", "6.6.6.6, 10.0.0.7")],
            "127.0.0.1:5000",
        );
        assert_eq!(bucket(of(&p, None)), "ip:127.0.0.1");
        assert_eq!(bucket(of(&p, Some("X-Forwarded-For"))), "ip:10.0.0.7");
        let p = parts(&[("X-Real-IP", "garbage")], "127.0.0.1:5000");
        assert_eq!(bucket(of(&p, Some("X-Real-IP"))), "ip:127.0.0.1");
        let p = parts(
            &[("X-Real-IP", "[2001:db8:1:2:3::4]:443")],
            "127.0.0.1:5000",
        );
        assert_eq!(bucket(of(&p, Some("x-real-ip"))), "ip:2001:db8:1:2::/64");
        let p = parts(&[], "[::ffff:10.1.2.3]:5000");
        assert_eq!(bucket(of(&p, Some("X-Forwarded-For"))), "ip:10.1.2.3");
    }
}
