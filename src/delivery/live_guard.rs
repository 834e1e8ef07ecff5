//! The checks before a live send through SMTP: refuse while the settings
//! still carry the demo identity (the embedded sender address, list id or
//! postal address), or while `http.public_base_url` would put links in
//! real mailboxes that cannot work (not https, or a loopback or private
//! address). `--allow-unsafe-links` lifts the URL rule for an intranet
//! list. The outbox transport and test sends are not guarded, so the demo
//! keeps working.

use std::net::IpAddr;

use crate::config::{Settings, TransportKind, DEFAULT_TOML};
use crate::error::BadInput;

/// Refuse (exit 2, listing every key to set) a live SMTP send with the demo
/// identity or unsafe links.
pub fn check(settings: &Settings, allow_unsafe_links: bool) -> Result<(), BadInput> {
    if settings.transport.kind != TransportKind::Smtp {
        return Ok(());
    }
    let problems = problems(settings, allow_unsafe_links);
    if problems.is_empty() {
        return Ok(());
    }
    Err(BadInput::new(format!(
        "refusing a live send through SMTP; set in config/local.toml (or HERALD__SECTION__KEY):\n{}",
        problems
            .iter()
            .map(|p| format!("  - {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    )))
}

/// Every reason to refuse, one line each.
pub fn problems(settings: &Settings, allow_unsafe_links: bool) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(demo) = toml::from_str::<Settings>(DEFAULT_TOML) {
        let same = |key: &str, ours: &str, theirs: &str, out: &mut Vec<String>| {
            if ours.trim().eq_ignore_ascii_case(theirs.trim()) {
                out.push(format!("{key}: still the demo value `{theirs}`"));
            }
        };
        same(
            "sender.from_address",
            &settings.sender.from_address,
            &demo.sender.from_address,
            &mut out,
        );
        same(
            "newsletter.list_id",
            &settings.newsletter.list_id,
            &demo.newsletter.list_id,
            &mut out,
        );
        same(
            "newsletter.postal_address",
            &settings.newsletter.postal_address,
            &demo.newsletter.postal_address,
            &mut out,
        );
    }
    if !allow_unsafe_links {
        if let Some(why) = link_problem(&settings.http.public_base_url) {
            out.push(format!(
                "http.public_base_url: `{}` {why}; readers' unsubscribe and web links would not \
                 work (an intranet list: pass --allow-unsafe-links)",
                settings.http.public_base_url
            ));
        }
    }
    out
}

/// Why links under `base` would not work for readers, if they would not.
pub fn link_problem(base: &str) -> Option<&'static str> {
    let Some(rest) = base.strip_prefix("https://") else {
        return Some("is not https");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return Some("has no host");
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Some("points at this machine (loopback)");
    }
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Some("points at this machine (loopback)"),
        Ok(ip) if is_private(&ip) => Some("points at a private address"),
        _ => None,
    }
}

fn is_private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                // Carrier-grade NAT, 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link local fe80::/10
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || is_private(&IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_must_be_https_on_a_public_host() {
        for bad in [
            "http://news.example.org",
            "https://127.0.0.1:8080",
            "https://localhost/herald",
            "https://app.localhost",
            "https://10.1.2.3",
            "https://192.168.0.10:8443/x",
            "https://172.16.5.4",
            "https://169.254.1.1",
            "https://100.64.0.1",
            "https://[::1]:8080",
            "https://[fd00::1]/",
            "https://[fe80::1]",
            "https://[::ffff:127.0.0.1]",
            "https://user@10.0.0.1/",
            "https:///path",
        ] {
            assert!(link_problem(bad).is_some(), "{bad}");
        }
        for good in [
            "https://news.example.org",
            "https://news.example.org:8443/herald",
            "https://93.184.216.34",
            "https://[2001:db8::1]/x",
        ] {
            assert_eq!(link_problem(good), None, "{good}");
        }
    }
}
