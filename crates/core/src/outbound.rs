//! Where the gateway may send requests (the outbound policy, against server-side request forgery).
//!
//! Three rules, checked when a config is written and again when a connection is made:
//! - Some addresses are never reachable, whoever asks: link-local addresses (which include the
//!   cloud metadata services at 169.254.169.254 and fd00:ec2::254), unspecified, multicast and
//!   reserved addresses, and the metadata host names. See [`classify`] and [`forbidden_host`].
//! - A base URL that an [`OutboundPolicy`] allows (the providers' public hosts, plus what the
//!   operator adds with `--outbound-allow`) may be used by anyone who may write the config.
//! - Any other base URL (a self-hosted model server, a private address) needs a principal with the
//!   right to use custom base URLs; the server decides who holds it.
//!
//! URLs are parsed with the `url` crate (WHATWG rules), so what is checked is what is connected to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use url::{Host, Url};

/// How reachable an address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// A public internet address.
    Public,
    /// Loopback, private (RFC 1918, unique local), shared (CGNAT) or a local host name: allowed
    /// only through the allow-list or the custom base URL right.
    Private,
    /// Never reachable: link-local (cloud metadata), unspecified, multicast, broadcast, reserved.
    Forbidden,
}

/// The metadata services' IPv6 address on AWS (the IPv4 one is link-local).
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// The class of an IP address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let seg = v6.segments();
            if v6.is_unspecified() || v6.is_multicast() || (seg[0] & 0xffc0) == 0xfe80 || v6 == AWS_METADATA_V6 {
                AddressClass::Forbidden
            } else if v6.is_loopback() || (seg[0] & 0xfe00) == 0xfc00 {
                AddressClass::Private
            } else {
                AddressClass::Public
            }
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    if ip.is_link_local() || ip.is_unspecified() || o[0] == 0 || ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        AddressClass::Forbidden
    } else if ip.is_loopback() || ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

/// Whether a host name is one of the cloud metadata names (resolved or not, they are refused).
pub fn forbidden_host(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    matches!(name.as_str(), "metadata" | "metadata.google.internal" | "instance-data" | "instance-data.ec2.internal")
}

/// The class of a URL's host as written (an IP literal, a local name, or a public-looking name;
/// the name's addresses are checked again when connecting).
pub fn host_class(url: &Url) -> AddressClass {
    match url.host() {
        Some(Host::Ipv4(ip)) => classify(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => classify(IpAddr::V6(ip)),
        Some(Host::Domain(d)) if forbidden_host(d) => AddressClass::Forbidden,
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            let local = d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local") || !d.contains('.');
            if local { AddressClass::Private } else { AddressClass::Public }
        }
        None => AddressClass::Forbidden,
    }
}

/// Parses an upstream URL: `http` or `https`, a host, no user name or password (credentials
/// belong in secrets), no fragment, and not a forbidden address. The error does not echo the URL,
/// which may hold a credential.
pub fn parse_url(raw: &str) -> Result<Url, String> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    let url = Url::parse(raw).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must be an http:// or https:// URL, not {}://", url.scheme()));
    }
    if url.host().is_none() {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password; keep credentials in a secret".into());
    }
    if url.fragment().is_some() {
        return Err("must not contain a #fragment".into());
    }
    if host_class(&url) == AddressClass::Forbidden {
        return Err(format!(
            "points at {}, a link-local, metadata or reserved address, which is never allowed",
            url.host_str().unwrap_or_default()
        ));
    }
    Ok(url)
}

/// A host in an allow-list entry: exact, or `*.suffix` (any subdomain, not the bare suffix).
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    Suffix(String),
}

/// One allow-list entry: `scheme://host[:port][/path]`, where the host may start with `*.` and
/// the port may be `*`. Without a port, the scheme's default port; with a path, URLs under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    scheme: String,
    host: HostPattern,
    /// `None`: any port.
    port: Option<u16>,
    path: String,
    text: String,
}

impl FromStr for AllowEntry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://").ok_or_else(|| format!("'{s}' is not scheme://host[:port][/path]"))?;
        if !matches!(scheme, "http" | "https") {
            return Err(format!("'{s}': the scheme must be http or https"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port_text) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or_else(|| format!("'{s}': unclosed '['"))?;
                (h, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        let port = match port_text {
            Some("*") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| format!("'{s}': '{p}' is not a port or *"))?),
            None => Some(if scheme == "https" { 443 } else { 80 }),
        };
        if host.is_empty() || host.contains('@') {
            return Err(format!("'{s}' has no host (or has credentials)"));
        }
        let host = host.to_ascii_lowercase();
        let host = match host.strip_prefix("*.") {
            Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => HostPattern::Suffix(suffix.to_string()),
            _ if host.contains('*') => return Err(format!("'{s}': '*' may only start the host, as in *.example.com")),
            _ => HostPattern::Exact(host),
        };
        Ok(AllowEntry { scheme: scheme.to_string(), host, port, path: path.to_string(), text: s.to_string() })
    }
}

impl std::fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl AllowEntry {
    /// Whether `url` is covered by this entry.
    pub fn matches(&self, url: &Url) -> bool {
        let host = match url.host() {
            Some(Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            None => return false,
        };
        let host_ok = match &self.host {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Suffix(s) => {
                host.len() > s.len() + 1
                    && host.ends_with(s.as_str())
                    && host.as_bytes().get(host.len() - s.len() - 1) == Some(&b'.')
            }
        };
        let path = url.path();
        let path_ok = self.path.is_empty()
            || path == self.path
            || (path.starts_with(&self.path) && path.as_bytes().get(self.path.len()) == Some(&b'/'));
        url.scheme() == self.scheme
            && host_ok
            && self.port.is_none_or(|p| url.port_or_known_default() == Some(p))
            && path_ok
    }
}

/// The providers' public API hosts, allowed for everyone.
pub const BUILTIN_ALLOW: &[&str] = &[
    "https://api.openai.com",
    "https://*.openai.azure.com",
    "https://*.cognitiveservices.azure.com",
    "https://*.services.ai.azure.com",
    "https://*.models.ai.azure.com",
    "https://api.anthropic.com",
    "https://api.cohere.com",
    "https://api.cohere.ai",
    "https://api.ai21.com",
    "https://*.amazonaws.com",
    "https://*.googleapis.com",
    "https://*.cloud.databricks.com",
    "https://*.azuredatabricks.net",
    "https://*.gcp.databricks.com",
    "https://login.microsoftonline.com",
];

/// The base URLs anyone may use: the built-in provider hosts and the operator's additions.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    entries: Vec<AllowEntry>,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self::with(Vec::new())
    }
}

impl OutboundPolicy {
    /// The built-in list plus `extra`.
    pub fn with(extra: Vec<AllowEntry>) -> Self {
        let mut entries: Vec<AllowEntry> = BUILTIN_ALLOW.iter().filter_map(|e| e.parse().ok()).collect();
        entries.extend(extra);
        OutboundPolicy { entries }
    }

    /// Whether anyone may point an endpoint at `url`.
    pub fn allows(&self, url: &Url) -> bool {
        host_class(url) != AddressClass::Forbidden && self.entries.iter().any(|e| e.matches(url))
    }

    /// The entries, for messages and documentation.
    pub fn entries(&self) -> impl Iterator<Item = &AllowEntry> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn classifies_addresses() {
        let c = |s: &str| classify(s.parse().unwrap());
        assert_eq!(c("169.254.169.254"), AddressClass::Forbidden);
        assert_eq!(c("fd00:ec2::254"), AddressClass::Forbidden);
        assert_eq!(c("fe80::1"), AddressClass::Forbidden);
        assert_eq!(c("0.0.0.0"), AddressClass::Forbidden);
        assert_eq!(c("::ffff:169.254.169.254"), AddressClass::Forbidden, "IPv4-mapped");
        assert_eq!(c("224.0.0.1"), AddressClass::Forbidden);
        assert_eq!(c("127.0.0.1"), AddressClass::Private);
        assert_eq!(c("10.1.2.3"), AddressClass::Private);
        assert_eq!(c("172.20.0.1"), AddressClass::Private);
        assert_eq!(c("100.100.1.1"), AddressClass::Private);
        assert_eq!(c("fd12::1"), AddressClass::Private);
        assert_eq!(c("::1"), AddressClass::Private);
        assert_eq!(c("8.8.8.8"), AddressClass::Public);
        assert_eq!(c("2606:4700::1111"), AddressClass::Public);
    }

    #[test]
    fn parses_upstream_urls_strictly() {
        assert!(parse_url("https://api.openai.com/v1").is_ok());
        let e = parse_url("https://user:sk-secret@api.example.com/v1").unwrap_err();
        assert!(e.contains("user name or password") && !e.contains("sk-secret"), "{e}");
        assert!(parse_url("http://169.254.169.254/latest").unwrap_err().contains("never allowed"));
        assert!(parse_url("http://[fd00:ec2::254]/").is_err());
        assert!(parse_url("http://metadata.google.internal/").is_err());
        assert!(parse_url("http://0x7f000001/").is_ok_and(|u| host_class(&u) == AddressClass::Private));
        assert!(parse_url("http://2852039166/").is_err(), "169.254.169.254 as a decimal integer");
        assert!(parse_url("ftp://x.example.com").is_err());
        assert!(parse_url("https://x .example.com").is_err());
        assert!(parse_url("https://a.example.com/#x").is_err());
    }

    #[test]
    fn allow_entries_match_host_port_and_path() {
        let e: AllowEntry = "https://*.openai.azure.com".parse().unwrap();
        assert!(e.matches(&url("https://eu.openai.azure.com/openai")));
        assert!(!e.matches(&url("https://openai.azure.com")), "the bare suffix is not a subdomain");
        assert!(!e.matches(&url("https://evilopenai.azure.com")));
        assert!(!e.matches(&url("http://eu.openai.azure.com")), "scheme");
        assert!(!e.matches(&url("https://eu.openai.azure.com:8443")), "default port only");
        let e: AllowEntry = "http://127.0.0.1:*".parse().unwrap();
        assert!(e.matches(&url("http://127.0.0.1:9999/v1")));
        assert!(!e.matches(&url("http://127.0.0.2:9999/v1")));
        let e: AllowEntry = "http://models.internal:8000/v1".parse().unwrap();
        assert!(e.matches(&url("http://models.internal:8000/v1/chat")));
        assert!(e.matches(&url("http://models.internal:8000/v1")));
        assert!(!e.matches(&url("http://models.internal:8000/v10")));
        assert!(!e.matches(&url("http://models.internal:8001/v1")));
        let e: AllowEntry = "http://[::1]:*".parse().unwrap();
        assert!(e.matches(&url("http://[::1]:8080/")));
        assert!("models.internal".parse::<AllowEntry>().is_err());
        assert!("https://a.*.com".parse::<AllowEntry>().is_err());
        assert!("https://u:p@a.com".parse::<AllowEntry>().is_err());
    }

    #[test]
    fn policy_allows_provider_hosts_only_by_default() {
        let p = OutboundPolicy::default();
        assert!(p.allows(&url("https://api.openai.com/v1")));
        assert!(p.allows(&url("https://my-resource.openai.azure.com")));
        assert!(!p.allows(&url("http://127.0.0.1:8000/v1")));
        assert!(!p.allows(&url("https://attacker.example.com/v1")));
        let p = OutboundPolicy::with(vec!["http://127.0.0.1:*".parse().unwrap()]);
        assert!(p.allows(&url("http://127.0.0.1:8000/v1")));
    }
}
