//! A small SRV-only DNS client (UDP, the nameservers of `/etc/resolv.conf`), for server discovery.
//! Address records are left to the system resolver (`getaddrinfo`, through tokio).

use std::{net::SocketAddr, time::Duration};

use tokio::net::UdpSocket;

const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// A query for the SRV records of `name` (recursion desired).
pub fn encode_srv_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut msg = Vec::with_capacity(32 + name.len());
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&0x0100u16.to_be_bytes()); // standard query, RD
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // 1 question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&TYPE_SRV.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    Some(msg)
}

fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

/// Reads a (possibly compressed) name at `pos`; returns it and the position after it.
fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..64 {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            return Some((labels.join("."), end.unwrap_or(pos + 1)));
        }
        if len & 0xC0 == 0xC0 {
            let target = (u16_at(msg, pos)? & 0x3FFF) as usize;
            end.get_or_insert(pos + 2);
            pos = target;
            continue;
        }
        let label = msg.get(pos + 1..pos + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        pos += 1 + len;
    }
    None
}

/// The SRV records of an answer to query `id`. None when the message is malformed or not the
/// answer; an empty list when the name has no SRV record.
pub fn parse_srv_response(id: u16, msg: &[u8]) -> Option<Vec<SrvRecord>> {
    if u16_at(msg, 0)? != id {
        return None;
    }
    let flags = u16_at(msg, 2)?;
    if flags & 0x8000 == 0 {
        return None; // not a response
    }
    let rcode = flags & 0x000F;
    if rcode != 0 {
        return Some(Vec::new()); // NXDOMAIN, SERVFAIL, …: no usable record
    }
    let questions = u16_at(msg, 4)?;
    let answers = u16_at(msg, 6)?;
    let mut pos = 12;
    for _ in 0..questions {
        pos = read_name(msg, pos)?.1 + 4;
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        let (_, after) = read_name(msg, pos)?;
        let rtype = u16_at(msg, after)?;
        let rdlen = u16_at(msg, after + 8)? as usize;
        let rdata = after + 10;
        msg.get(rdata..rdata + rdlen)?;
        if rtype == TYPE_SRV && rdlen >= 7 {
            let (target, _) = read_name(msg, rdata + 6)?;
            records.push(SrvRecord {
                priority: u16_at(msg, rdata)?,
                weight: u16_at(msg, rdata + 2)?,
                port: u16_at(msg, rdata + 4)?,
                target,
            });
        }
        pos = rdata + rdlen;
    }
    Some(records)
}

/// The record to use: the lowest priority, then the highest weight (no random weighting yet).
/// A single record with target "." means the service is not available.
pub fn pick(records: &[SrvRecord]) -> Option<(String, u16)> {
    records
        .iter()
        .filter(|r| !r.target.is_empty() && r.target != ".")
        .min_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)))
        .map(|r| (r.target.clone(), r.port))
}

/// The nameservers of a `resolv.conf`.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| {
            rest.trim()
                .split('%')
                .next()?
                .parse::<std::net::IpAddr>()
                .ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The SRV records of `name`, asked of each nameserver in turn; empty when none answers.
pub async fn lookup_srv(name: &str, timeout: Duration) -> Vec<SrvRecord> {
    let conf = tokio::fs::read_to_string("/etc/resolv.conf")
        .await
        .unwrap_or_default();
    for server in nameservers(&conf) {
        let id: u16 = rand::random();
        let Some(query) = encode_srv_query(id, name) else {
            return Vec::new();
        };
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let attempt = async {
            let socket = UdpSocket::bind(bind).await.ok()?;
            socket.connect(server).await.ok()?;
            socket.send(&query).await.ok()?;
            let mut buf = vec![0u8; 4096];
            loop {
                let n = socket.recv(&mut buf).await.ok()?;
                if let Some(records) = parse_srv_response(id, &buf[..n]) {
                    return Some(records);
                }
            }
        };
        if let Ok(Some(records)) = tokio::time::timeout(timeout, attempt).await {
            return records;
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to `query` with the given SRV records (targets compressed against the question).
    fn answer(query: &[u8], records: &[(u16, u16, u16, &str)]) -> Vec<u8> {
        let mut msg = query.to_vec();
        msg[2] = 0x81; // response, RD
        msg[3] = 0x80; // RA, rcode 0
        msg[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        for (priority, weight, port, target) in records {
            msg.extend_from_slice(&[0xC0, 12]); // name: pointer to the question
            msg.extend_from_slice(&TYPE_SRV.to_be_bytes());
            msg.extend_from_slice(&CLASS_IN.to_be_bytes());
            msg.extend_from_slice(&300u32.to_be_bytes());
            let mut rdata = Vec::new();
            rdata.extend_from_slice(&priority.to_be_bytes());
            rdata.extend_from_slice(&weight.to_be_bytes());
            rdata.extend_from_slice(&port.to_be_bytes());
            if let Some(prefix) = target.strip_suffix(".@") {
                // `host.@`: "host" then a pointer to the question's name minus its first labels.
                rdata.push(prefix.len() as u8);
                rdata.extend_from_slice(prefix.as_bytes());
                rdata.extend_from_slice(&[
                    0xC0,
                    12 + 1 + "_matrix-fed".len() as u8 + 1 + "_tcp".len() as u8,
                ]);
            } else {
                for label in target.split('.').filter(|l| !l.is_empty()) {
                    rdata.push(label.len() as u8);
                    rdata.extend_from_slice(label.as_bytes());
                }
                rdata.push(0);
            }
            msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            msg.extend_from_slice(&rdata);
        }
        msg
    }

    #[test]
    fn query_encoding() {
        let q = encode_srv_query(0x1234, "_matrix-fed._tcp.example.org").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..24], b"\x0b_matrix-fed");
        assert_eq!(&q[q.len() - 4..], &[0, 33, 0, 1]);
        assert_eq!(encode_srv_query(1, "a..b"), None);
    }

    #[test]
    fn answers_are_parsed_with_compression() {
        let q = encode_srv_query(7, "_matrix-fed._tcp.example.org").unwrap();
        let msg = answer(
            &q,
            &[(10, 5, 8443, "fed1.example.net"), (5, 0, 443, "fed0.@")],
        );
        let records = parse_srv_response(7, &msg).unwrap();
        assert_eq!(
            records[0],
            SrvRecord {
                priority: 10,
                weight: 5,
                port: 8443,
                target: "fed1.example.net".into()
            }
        );
        assert_eq!(records[1].target, "fed0.example.org");
        assert_eq!(pick(&records), Some(("fed0.example.org".into(), 443)));
        // Another id, a query instead of a response, truncated data.
        assert_eq!(parse_srv_response(8, &msg), None);
        assert_eq!(parse_srv_response(7, &q), None);
        assert_eq!(parse_srv_response(7, &msg[..msg.len() - 3]), None);
    }

    #[test]
    fn no_records_and_errors() {
        let q = encode_srv_query(9, "_matrix._tcp.example.org").unwrap();
        assert_eq!(parse_srv_response(9, &answer(&q, &[])), Some(vec![]));
        let mut nx = answer(&q, &[]);
        nx[3] = 0x83; // NXDOMAIN
        assert_eq!(parse_srv_response(9, &nx), Some(vec![]));
        assert_eq!(
            pick(&[SrvRecord {
                priority: 0,
                weight: 0,
                port: 0,
                target: "".into()
            }]),
            None
        );
    }

    #[test]
    fn pick_prefers_low_priority_then_high_weight() {
        let r = |priority, weight, target: &str| SrvRecord {
            priority,
            weight,
            port: 1,
            target: target.into(),
        };
        assert_eq!(
            pick(&[r(2, 100, "c"), r(1, 1, "b"), r(1, 9, "a")])
                .unwrap()
                .0,
            "a"
        );
    }

    #[test]
    fn resolv_conf() {
        let conf = "# comment\nsearch example.org\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver bogus\n";
        assert_eq!(
            nameservers(conf),
            vec![
                "10.0.0.2:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
