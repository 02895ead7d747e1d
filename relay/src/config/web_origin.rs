//! Web origins and `Host` authorities, as a browser sends them and as `admin.allowed_origins`
//! lists them: parsed here for the configuration's rules and for the admin port's guard.

/// An origin as browsers send it: scheme, host and port, lower case, with no path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebOrigin(String);

impl WebOrigin {
    /// `text` as an origin (`https://crm.example.com`, `http://10.1.2.3:8081`), or `None`.
    pub fn parse(text: &str) -> Option<WebOrigin> {
        let lower = text.trim_end_matches('/').to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://")?;
        if !matches!(scheme, "http" | "https") || rest.is_empty() {
            return None;
        }
        if rest.contains(['/', '?', '#', '@', ' ']) {
            return None;
        }
        let (host, _) = split_host(rest)?;
        (!host.is_empty()).then_some(WebOrigin(lower))
    }
}

/// `host[:port]` split into the host (brackets removed from an IPv6 address) and the port.
pub fn split_host(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            port => Some((host, Some(port.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => Some((host, Some(port))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_in_their_browser_form() {
        assert_eq!(
            WebOrigin::parse("HTTPS://CRM.example.com/"),
            WebOrigin::parse("https://crm.example.com")
        );
        assert!(WebOrigin::parse("http://[::1]:8080").is_some());
        assert!(WebOrigin::parse("null").is_none());
        assert!(WebOrigin::parse("ftp://x").is_none());
        assert!(WebOrigin::parse("https://x/path").is_none());
        assert!(WebOrigin::parse("https://").is_none());
    }
}
