//! Which URLs a webhook may point at, and which addresses a delivery may connect to.
//!
//! A webhook sender is an HTTP client that strangers aim. In production mode a target must be
//! `https` and every address it resolves to must be public: not loopback, private, link-local
//! (the cloud metadata address), shared, multicast, or otherwise reserved, in any spelling.
//! The check runs at creation and again inside the resolver the HTTP client connects through,
//! so the address checked is the address connected to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Why a target URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not a URL at all.
    #[error("webhook URL is not a valid absolute URL")]
    Syntax,
    /// Not `https` (or `http` when private targets are allowed).
    #[error("webhook URL must use https")]
    Scheme,
    /// Credentials in the URL would end up in logs and attempt records.
    #[error("webhook URL must not contain a user name or password")]
    Credentials,
    /// The host is, or resolves to, an address that is not public.
    #[error("webhook URL must not point at a private, loopback, link-local or reserved address")]
    PrivateAddress,
    /// The host name does not resolve.
    #[error("webhook URL host could not be resolved")]
    Unresolvable,
}

/// The target rules in force: production (the default) or development.
#[derive(Clone, Copy, Debug, Default)]
pub struct TargetPolicy {
    /// `AGORA_ALLOW_PRIVATE_TARGETS`: allow `http` and non-public addresses.
    pub allow_private: bool,
}

impl TargetPolicy {
    /// Parses and checks a URL without resolving it: scheme, credentials, and a literal
    /// address host. The URL crate normalizes odd IPv4 spellings (decimal, octal, hex,
    /// percent-encoding, trailing dots) before the check sees them.
    pub fn check_url(&self, raw: &str) -> Result<Url, TargetError> {
        if raw.len() > 2048 {
            return Err(TargetError::Syntax);
        }
        let url = Url::parse(raw).map_err(|_| TargetError::Syntax)?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            _ => return Err(TargetError::Scheme),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        let host = url.host().ok_or(TargetError::Syntax)?;
        if !self.allow_private {
            match host {
                Host::Ipv4(ip) if !is_public(IpAddr::V4(ip)) => {
                    return Err(TargetError::PrivateAddress)
                }
                Host::Ipv6(ip) if !is_public(IpAddr::V6(ip)) => {
                    return Err(TargetError::PrivateAddress)
                }
                Host::Domain(d) if is_local_name(d) => return Err(TargetError::PrivateAddress),
                _ => {}
            }
        }
        Ok(url)
    }

    /// Resolves a host and keeps only the addresses this policy allows; an empty answer is an
    /// error, and so is any non-public address among the answers (a host that mixes public and
    /// private answers is not trusted at all).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, TargetError> {
        let host = host.trim_end_matches('.');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| TargetError::Unresolvable)?
            .collect();
        self.filter(addrs)
    }

    /// Applies the policy to resolved addresses.
    pub fn filter(&self, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, TargetError> {
        if addrs.is_empty() {
            return Err(TargetError::Unresolvable);
        }
        if !self.allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(TargetError::PrivateAddress);
        }
        Ok(addrs)
    }
}

/// Names that always mean this machine or its network, whatever DNS says.
fn is_local_name(domain: &str) -> bool {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    d == "localhost"
        || d.ends_with(".localhost")
        || d.ends_with(".local")
        || d.ends_with(".internal")
}

/// Whether an address is globally routable unicast.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || a == 0 // 0.0.0.0/8 "this network"
        || a == 10 // RFC 1918
        || a == 127 // loopback
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10 shared (CGNAT)
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // RFC 1918
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // RFC 1918
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200) // 2001::/23 IETF protocol assignments (Teredo, ORCHID, …)
        || s[0] == 0x2002 // 6to4 carries an IPv4 address of anyone's choosing
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only 100::/64
        || (s[0] & 0xe000) != 0x2000) // outside global unicast 2000::/3
}

/// The IPv4 address inside IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`) and
/// NAT64 (`64:ff9b::a.b.c.d`, `64:ff9b:1::/48`) IPv6 addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let mapped = s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff;
    let compatible = s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1);
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0, 0, 0, 0] || s[2] == 1);
    (mapped || compatible || nat64).then(tail)
}

/// A DNS resolver for the HTTP client that applies the target policy to every connection, so
/// a name that resolved to a public address at creation cannot be rebound to a private one.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    policy: TargetPolicy,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: TargetPolicy) -> Arc<Self> {
        Arc::new(Self { policy })
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let addrs = policy.resolve(name.as_str(), 0).await?;
            let iter: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(iter)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTION: TargetPolicy = TargetPolicy {
        allow_private: false,
    };

    #[test]
    fn hostile_urls_are_refused() {
        let hostile = [
            "http://example.com/hook",
            "ftp://example.com/",
            "https://127.0.0.1/",
            "https://127.1/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://0x7f.0.0.1/",
            "https://%31%32%37.0.0.1/",
            "https://localhost/",
            "https://LOCALHOST./",
            "https://foo.localhost/",
            "https://10.0.0.1/",
            "https://172.16.0.1/",
            "https://172.31.255.255/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://0.0.0.0/",
            "https://0/",
            "https://255.255.255.255/",
            "https://224.0.0.1/",
            "https://240.0.0.1/",
            "https://192.0.2.1/",
            "https://198.18.0.1/",
            "https://[::1]/",
            "https://[::]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[::127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[64:ff9b:1::a00:1]/",
            "https://[fc00::1]/",
            "https://[fd12:3456::1]/",
            "https://[fe80::1]/",
            "https://[ff02::1]/",
            "https://[2001:db8::1]/",
            "https://[2002:7f00:1::]/",
            "https://user:pass@example.com/",
            "https://metadata.google.internal/",
            "https://printer.local/",
            "not a url",
            "https://",
        ];
        assert!(hostile.len() >= 40);
        for url in hostile {
            assert!(
                PRODUCTION.check_url(url).is_err(),
                "{url} should be refused"
            );
        }
    }

    #[test]
    fn public_urls_pass() {
        for url in [
            "https://example.com/hook",
            "https://93.184.216.34/x",
            "https://[2606:4700::1111]/",
            "https://hooks.slack.com/services/T/B/X",
        ] {
            assert!(PRODUCTION.check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn development_mode_allows_loopback_http() {
        let dev = TargetPolicy {
            allow_private: true,
        };
        assert!(dev.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(dev.check_url("ftp://127.0.0.1/").is_err());
    }

    #[test]
    fn any_private_answer_poisons_a_resolution() {
        let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
        let private: SocketAddr = "10.0.0.1:443".parse().unwrap();
        assert_eq!(PRODUCTION.filter(vec![public]), Ok(vec![public]));
        assert_eq!(
            PRODUCTION.filter(vec![public, private]),
            Err(TargetError::PrivateAddress)
        );
        assert_eq!(PRODUCTION.filter(vec![]), Err(TargetError::Unresolvable));
    }
}
