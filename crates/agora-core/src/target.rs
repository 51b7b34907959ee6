//! Which URLs a webhook may point at, and which addresses a delivery may connect to.
//!
//! A webhook sender is an HTTP client that strangers aim. In production mode a target must be
//! `https` and every address it resolves to must be public: not loopback, private, link-local
//! (the cloud metadata address), shared, multicast, or otherwise reserved, in any spelling.
//! The check runs at creation and again inside the resolver the HTTP client connects through,
//! so the address checked is the address connected to.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
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

    /// Resolves a host with the system resolver and keeps only the addresses this policy
    /// allows; an empty answer is an error, and so is any non-public address among the answers
    /// (a host that mixes public and private answers is not trusted at all).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, TargetError> {
        self.resolve_with(&SystemLookup, host, port).await
    }

    /// [`TargetPolicy::resolve`] through any [`Lookup`] (tests inject hostile answers).
    pub async fn resolve_with(
        &self,
        lookup: &dyn Lookup,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, TargetError> {
        let host = host.trim_end_matches('.');
        if !self.allow_private && is_local_name(host) {
            return Err(TargetError::PrivateAddress);
        }
        let addrs = lookup
            .lookup(host.to_owned(), port)
            .await
            .map_err(|_| TargetError::Unresolvable)?;
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

/// Names that always mean this machine or its network, whatever DNS says: `localhost` and
/// the special-use and private-use suffixes, and single-label names, which the system resolver
/// completes with the local search domains (`https://intranet/`).
fn is_local_name(domain: &str) -> bool {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    const LOCAL_SUFFIXES: &[&str] = &[
        "localhost",
        "local",        // mDNS (RFC 6762)
        "internal",     // private use (cloud metadata: metadata.google.internal)
        "home.arpa",    // home networks (RFC 8375)
        "localdomain",  // common /etc/hosts alias
        "lan",          // common router default
        "intranet",     // RFC 6762 appendix G
        "corp",         // idem
        "private",      // idem
        "in-addr.arpa", // reverse DNS names are not web hosts
        "ip6.arpa",     // idem
    ];
    !d.contains('.')
        || LOCAL_SUFFIXES
            .iter()
            .any(|suffix| d == *suffix || d.ends_with(&format!(".{suffix}")))
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
    // An IPv6 address carrying an IPv4 one is refused whatever it carries: what it reaches
    // depends on a translator or a dual-stack socket, not on the address checked.
    if embeds_v4(ip) {
        return false;
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
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation 3fff::/20 (RFC 9637)
        || s[0] == 0x5f00 // SRv6 SIDs 5f00::/16 (RFC 9602)
        || (s[0] & 0xe000) != 0x2000) // outside global unicast 2000::/3
}

/// Whether an IPv6 address carries an IPv4 one: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-translated (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 well-known
/// (`64:ff9b::/96`) and local-use (`64:ff9b:1::/48`, where the IPv4 address may sit anywhere
/// after the prefix, so its tail says nothing).
fn embeds_v4(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let mapped = s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff;
    let translated = s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0;
    let compatible = s[..6] == [0, 0, 0, 0, 0, 0];
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0, 0, 0, 0] || s[2] == 1);
    mapped || translated || compatible || nat64
}

/// The answer of a [`Lookup`].
pub type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Turns a host name into addresses. The system resolver in production; tests inject answers
/// (a rebinding name, a public address followed by a private one) through the same policy.
pub trait Lookup: Send + Sync + 'static {
    /// Every address `host` has, with `port`.
    fn lookup(&self, host: String, port: u16) -> LookupFuture;
}

/// The operating system's resolver (`getaddrinfo` through tokio).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: String, port: u16) -> LookupFuture {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// A fixed table of answers, in the order given; any other name does not resolve. For tests.
#[derive(Clone, Debug, Default)]
pub struct StaticLookup {
    answers: HashMap<String, Vec<IpAddr>>,
}

impl StaticLookup {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `host` with `addrs`, in this order.
    pub fn with(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.answers
            .insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

impl Lookup for StaticLookup {
    fn lookup(&self, host: String, port: u16) -> LookupFuture {
        let found = self.answers.get(&host.to_ascii_lowercase()).map(|addrs| {
            addrs
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect::<Vec<_>>()
        });
        Box::pin(async move {
            found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"))
        })
    }
}

/// A DNS resolver for the HTTP client that applies the target policy to every connection, so
/// a name that resolved to a public address at creation cannot be rebound to a private one.
/// The client connects only to the addresses this resolver answered, after they were checked:
/// there is no second lookup between the check and the connection.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: TargetPolicy,
    lookup: Arc<dyn Lookup>,
}

impl std::fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl GuardedResolver {
    /// A resolver enforcing `policy` over `lookup`.
    pub fn with_lookup(policy: TargetPolicy, lookup: Arc<dyn Lookup>) -> Self {
        Self { policy, lookup }
    }
}

/// The form the HTTP client's connector asks of a resolver: ready at once, one lookup per
/// connection.
impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = TargetError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, TargetError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TargetError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy;
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let addrs = policy.resolve_with(&*lookup, name.as_str(), 0).await?;
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTION: TargetPolicy = TargetPolicy {
        allow_private: false,
    };

    /// Every spelling an attacker might try. The URL crate normalizes IPv4 spellings (decimal,
    /// octal, hex, short forms, percent-encoding, full-width digits, trailing dots) before the
    /// address check sees them.
    const HOSTILE: &[&str] = &[
        // scheme and shape
        "http://example.com/hook",
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "https://user:pass@example.com/",
        "https://127.0.0.1:443@example.com/",
        "not a url",
        "https://",
        // loopback, in every spelling
        "https://127.0.0.1/",
        "https://127.1/",
        "https://127.0.1/",
        "https://2130706433/",
        "https://0x7f000001/",
        "https://0x7F.0.0.1/",
        "https://0177.0.0.1/",
        "https://017700000001/",
        "https://127.000.000.001/",
        "https://%31%32%37.0.0.1/",
        "https://127%2E0%2E0%2E1/",
        "https://127.0.0.1./",
        "https://\u{ff11}\u{ff12}\u{ff17}.0.0.1/",
        "https://127.255.255.254:8443/",
        "https://[::1]/",
        "https://[0:0:0:0:0:0:0:1]/",
        // local names
        "https://localhost/",
        "https://LOCALHOST./",
        "https://foo.localhost/",
        "https://lOcAlHoSt:443/",
        "https://%6c%6f%63%61%6c%68%6f%73%74/",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://printer.local/",
        "https://router.home.arpa/",
        "https://intranet/",
        "https://intranet./",
        "https://1.0.0.127.in-addr.arpa/",
        // RFC 1918, shared, link-local and the metadata address
        "https://10.0.0.1/",
        "https://012.0.0.1/",
        "https://167772161/",
        "https://172.16.0.1/",
        "https://172.31.255.255/",
        "https://192.168.1.1/",
        "https://0xc0a80101/",
        "https://100.64.0.1/",
        "https://100.127.255.255/",
        "https://169.254.169.254/latest/meta-data/",
        "https://0xa9fea9fe/",
        "https://2852039166/",
        "https://169.254.169.254./",
        // this network, broadcast, multicast, reserved, documentation, benchmarking
        "https://0.0.0.0/",
        "https://0/",
        "https://0.1.2.3/",
        "https://255.255.255.255/",
        "https://224.0.0.1/",
        "https://239.255.255.250/",
        "https://240.0.0.1/",
        "https://192.0.0.170/",
        "https://192.0.2.1/",
        "https://192.88.99.1/",
        "https://198.18.0.1/",
        "https://198.51.100.7/",
        "https://203.0.113.9/",
        // IPv6 unspecified, IPv4-mapped, -translated, -compatible, NAT64
        "https://[::]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:7f00:1]/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://[::ffff:93.184.216.34]/",
        "https://[::ffff:0:7f00:1]/",
        "https://[::127.0.0.1]/",
        "https://[::93.184.216.34]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[64:ff9b::5db8:d822]/",
        "https://[64:ff9b:1::a00:1]/",
        "https://[64:ff9b:1:a00:1::5db8:d822]/",
        // IPv6 unique-local, link-local, site-local, multicast, documentation, 6to4, Teredo
        "https://[fc00::1]/",
        "https://[fd12:3456::1]/",
        "https://[fe80::1]/",
        "https://[fe80::1%25eth0]/",
        "https://[fec0::1]/",
        "https://[ff02::1]/",
        "https://[2001:db8::1]/",
        "https://[3fff::1]/",
        "https://[2002:7f00:1::]/",
        "https://[2001::1]/",
        "https://[5f00::1]/",
        "https://[100::1]/",
    ];

    #[test]
    fn hostile_urls_are_refused() {
        assert!(HOSTILE.len() >= 40);
        for url in HOSTILE {
            assert!(
                PRODUCTION.check_url(url).is_err(),
                "{url} should be refused"
            );
        }
    }

    #[test]
    fn odd_spellings_are_refused_for_the_address_they_mean() {
        // Were the URL crate to stop normalizing, the table above could pass for the wrong
        // reason (a syntax error); pin the reason for the spellings that matter.
        for url in [
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://%31%32%37.0.0.1/",
            "https://127.0.0.1./",
            "https://\u{ff11}\u{ff12}\u{ff17}.0.0.1/",
            "https://[::ffff:7f00:1]/",
            "https://[64:ff9b:1::a00:1]/",
            "https://0xa9fea9fe/",
            "https://intranet/",
        ] {
            assert_eq!(
                PRODUCTION.check_url(url),
                Err(TargetError::PrivateAddress),
                "{url}"
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_public_answer_followed_by_a_private_one_is_refused() {
        let lookup = StaticLookup::new()
            .with("mixed.example.com", &[ip("93.184.216.34"), ip("127.0.0.1")])
            .with(
                "metadata.example.com",
                &[ip("2606:4700::1111"), ip("169.254.169.254")],
            )
            .with(
                "mapped.example.com",
                &[ip("93.184.216.34"), ip("::ffff:10.0.0.1")],
            )
            .with(
                "public.example.com",
                &[ip("93.184.216.34"), ip("2606:4700::1111")],
            );
        for host in [
            "mixed.example.com",
            "metadata.example.com",
            "mapped.example.com",
        ] {
            assert_eq!(
                PRODUCTION.resolve_with(&lookup, host, 443).await,
                Err(TargetError::PrivateAddress),
                "{host}"
            );
        }
        let ok = PRODUCTION
            .resolve_with(&lookup, "public.example.com.", 443)
            .await
            .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(
            PRODUCTION
                .resolve_with(&lookup, "nowhere.example.com", 443)
                .await,
            Err(TargetError::Unresolvable)
        );
    }

    #[tokio::test]
    async fn local_names_are_refused_before_any_lookup() {
        // A name that always means this machine is refused even if DNS were to answer a
        // public address for it.
        let lookup = StaticLookup::new()
            .with("localhost", &[ip("93.184.216.34")])
            .with("db.internal", &[ip("93.184.216.34")]);
        for host in ["localhost", "LOCALHOST.", "db.internal"] {
            assert_eq!(
                PRODUCTION.resolve_with(&lookup, host, 443).await,
                Err(TargetError::PrivateAddress),
                "{host}"
            );
        }
    }

    #[tokio::test]
    async fn development_mode_resolves_private_answers() {
        let dev = TargetPolicy {
            allow_private: true,
        };
        let lookup = StaticLookup::new().with("hook.test", &[ip("127.0.0.1")]);
        assert_eq!(
            dev.resolve_with(&lookup, "hook.test", 9000).await,
            Ok(vec!["127.0.0.1:9000".parse().unwrap()])
        );
    }

    #[test]
    fn classification_of_addresses() {
        for private in [
            "0.0.0.0",
            "0.255.255.255",
            "10.255.255.255",
            "100.64.0.0",
            "127.0.0.1",
            "169.254.0.1",
            "172.16.0.0",
            "192.0.0.8",
            "192.168.0.1",
            "198.19.255.255",
            "224.0.0.0",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "fc00::",
            "fe80::",
            "ff00::",
            "2001:db8::",
            "3fff:fff::1",
        ] {
            assert!(!is_public(ip(private)), "{private} is not public");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450::1",
            "3fff:1000::1",
            "2620:fe::fe",
        ] {
            assert!(is_public(ip(public)), "{public} is public");
        }
    }
}
