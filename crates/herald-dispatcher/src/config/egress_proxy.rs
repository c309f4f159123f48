//! The `dispatcher.egress_proxy` setting: the URL of the HTTP proxy every delivery, test send
//! and consent handshake goes through, and its validation. Pure: no I/O.
//!
//! The user and password a URL may carry are a secret: `Debug`, problems and every name this
//! module hands out show the proxy's scheme, host and port only.

use serde::Deserialize;

/// The `dispatcher.egress_proxy` setting as written: `http://[user:password@]host[:port]` or
/// `https://…`; empty means no proxy. Its `Debug` never shows the user or password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct EgressProxy(String);

/// A valid egress proxy, taken apart.
#[derive(Clone)]
pub(crate) struct ProxyEndpoint {
    /// `scheme://host:port`, without user or password.
    pub(crate) url: url::Url,
    /// `host:port`, what logs and attempt errors name.
    pub(crate) address: String,
    /// The proxy's host name, `None` for an IP address.
    pub(crate) name: Option<String>,
    /// The user and password the proxy is sent (`Proxy-Authorization: Basic`), decoded.
    pub(crate) credentials: Option<Credentials>,
}

/// A proxy user and password; `Debug` shows neither.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl EgressProxy {
    /// The setting as written.
    pub fn new(url: impl Into<String>) -> EgressProxy {
        EgressProxy(url.into())
    }

    /// Returns the proxy taken apart, `None` when the setting is empty (no proxy), or what is
    /// wrong with it, naming the setting and never quoting it.
    pub(crate) fn endpoint(&self) -> Result<Option<ProxyEndpoint>, String> {
        let text = self.0.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let parsed = url::Url::parse(text)
            .map_err(|err| format!("dispatcher.egress_proxy is not a URL ({err})"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("dispatcher.egress_proxy must be an http:// or https:// URL".to_owned());
        }
        let without_path = parsed.path() == "/" || parsed.path().is_empty();
        if !without_path || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(
                "dispatcher.egress_proxy must be scheme://[user:password@]host[:port], \
                        without a path, query or fragment"
                    .to_owned(),
            );
        }
        let Some(host) = parsed.host() else {
            return Err("dispatcher.egress_proxy must name a host".to_owned());
        };
        let name = match host {
            url::Host::Domain(name) => Some(name.to_owned()),
            url::Host::Ipv4(_) | url::Host::Ipv6(_) => None,
        };
        let Some(port) = parsed.port_or_known_default() else {
            return Err("dispatcher.egress_proxy must name a port".to_owned());
        };
        let address = format!("{host}:{port}");
        let credentials = if parsed.username().is_empty() && parsed.password().is_none() {
            None
        } else {
            let decode = |part: &str| {
                percent_encoding::percent_decode_str(part)
                    .decode_utf8()
                    .map(|decoded| decoded.into_owned())
                    .map_err(|_| {
                        "dispatcher.egress_proxy's user and password must be UTF-8 once \
                         percent-decoded"
                            .to_owned()
                    })
            };
            Some(Credentials {
                user: decode(parsed.username())?,
                password: decode(parsed.password().unwrap_or_default())?,
            })
        };
        let mut url = parsed;
        // Neither can fail on an http(s) URL with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(Some(ProxyEndpoint {
            url,
            address,
            name,
            credentials,
        }))
    }
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.endpoint() {
            Ok(None) => f.write_str("EgressProxy(off)"),
            Ok(Some(endpoint)) => f
                .debug_struct("EgressProxy")
                .field("url", &endpoint.url.as_str())
                .field("credentials", &endpoint.credentials)
                .finish(),
            Err(_) => f.write_str("EgressProxy(invalid)"),
        }
    }
}

impl std::fmt::Debug for ProxyEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyEndpoint")
            .field("url", &self.url.as_str())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("redacted")
    }
}

#[cfg(test)]
mod tests;
