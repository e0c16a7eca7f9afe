//! The pooled HTTP client for everything the server calls out to (providers, token endpoints,
//! alert webhooks), with the parts of the outbound policy that can only be checked on the wire:
//! host names are resolved by [`GuardedResolver`], which never hands out a link-local, metadata or
//! reserved address (so a name that resolves, or is rebound, to 169.254.169.254 is refused), and
//! redirects are followed only within the same scheme, host and port.

use std::net::SocketAddr;
use std::time::Duration;

use modelgate_core::outbound::{AddressClass, classify, forbidden_host};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

/// Most redirects followed (within one host).
const MAX_REDIRECTS: usize = 5;

/// The upstream client.
pub fn client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .dns_resolver(std::sync::Arc::new(GuardedResolver))
        .redirect(redirect::Policy::custom(same_origin_only))
        .build()
}

fn same_origin_only(attempt: redirect::Attempt) -> redirect::Action {
    let Some(first) = attempt.previous().first() else { return attempt.stop() };
    let same = attempt.url().scheme() == first.scheme()
        && attempt.url().host_str() == first.host_str()
        && attempt.url().port_or_known_default() == first.port_or_known_default();
    if !same {
        let to = attempt.url().host_str().unwrap_or_default().to_string();
        return attempt
            .error(format!("the upstream redirected to another host ({to}); modelgate does not follow that"));
    }
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(format!("the upstream redirected more than {MAX_REDIRECTS} times"));
    }
    attempt.follow()
}

/// Resolves host names with the system resolver, dropping addresses the gateway never connects to.
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            if forbidden_host(&host) {
                return Err(format!("{host} is a metadata host, which modelgate never connects to").into());
            }
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.into_iter().filter(|a| classify(a.ip()) != AddressClass::Forbidden).collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves only to link-local, metadata or reserved addresses, which modelgate never connects to"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}
