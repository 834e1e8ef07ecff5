//! `herald dkim …`: generate a DKIM key and print what to publish in DNS
//! and add to the configuration; print the records of the configured keys.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::bad_input;
use crate::cli::{DkimCommand, DkimKeyType};
use crate::config::{DkimAlgorithm, Settings};
use crate::mailer::dkim_keys;

pub fn run(settings: &Settings, cmd: DkimCommand) -> anyhow::Result<u8> {
    match cmd {
        DkimCommand::Keygen {
            domain,
            selector,
            algorithm,
            key_dir,
        } => keygen(&domain, &selector, algorithm, &settings.home.join(key_dir)),
        DkimCommand::Show => show(settings),
    }
}

fn algorithm_of(t: DkimKeyType) -> DkimAlgorithm {
    match t {
        DkimKeyType::Rsa => DkimAlgorithm::Rsa,
        DkimKeyType::Ed25519 => DkimAlgorithm::Ed25519,
    }
}

fn algorithm_name(a: DkimAlgorithm) -> &'static str {
    match a {
        DkimAlgorithm::Rsa => "rsa",
        DkimAlgorithm::Ed25519 => "ed25519",
    }
}

fn print_record(selector: &str, domain: &str, algorithm: DkimAlgorithm, public: &str) {
    let text = dkim_keys::record_text(algorithm, public);
    println!("  name:  {}", dkim_keys::record_name(selector, domain));
    println!("  type:  TXT");
    println!("  value: {}", dkim_keys::quoted_strings(&text));
}

fn keygen(domain: &str, selector: &str, t: DkimKeyType, dir: &Path) -> anyhow::Result<u8> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let selector = selector.trim().to_ascii_lowercase();
    crate::config::dns_name("--domain", &domain)?;
    crate::config::dns_name("--selector", &selector)?;
    let algorithm = algorithm_of(t);
    crate::private_fs::create_dir_all(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).with_context(|| format!("reading {}", dir.display()))?;
    let path = dir.join(format!(
        "{selector}._domainkey.{domain}.{}",
        match algorithm {
            DkimAlgorithm::Rsa => "pem",
            DkimAlgorithm::Ed25519 => "ed25519",
        }
    ));
    if path.exists() {
        return Err(bad_input!(
            "{} already exists; pick another --selector (keys are never replaced)",
            path.display()
        ));
    }
    let private = dkim_keys::generate(algorithm)?;
    let public = dkim_keys::public_key(algorithm, &private)?;
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(private.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("wrote the private key to {} (mode 0600)", path.display());
    println!();
    println!("Publish this DNS record:");
    print_record(&selector, &domain, algorithm, &public);
    println!();
    println!(
        "Then add to config/local.toml (list a second [[dkim]] key to sign with both; \
         a single [dkim] table works too):"
    );
    println!("[[dkim]]");
    println!("domain = \"{domain}\"");
    println!("selector = \"{selector}\"");
    println!("algorithm = \"{}\"", algorithm_name(algorithm));
    println!(
        "private_key_path = {}",
        serde_json::to_string(&path.display().to_string())?
    );
    Ok(0)
}

fn show(settings: &Settings) -> anyhow::Result<u8> {
    if settings.dkim.is_empty() {
        return Err(bad_input!(
            "no DKIM key is configured: run herald dkim keygen and add the [[dkim]] lines it prints"
        ));
    }
    for (i, key) in settings.dkim.keys().iter().enumerate() {
        let private = std::fs::read_to_string(&key.private_key_path).map_err(|e| {
            bad_input!(
                "dkim.private_key_path {}: {e}",
                key.private_key_path.display()
            )
        })?;
        let public = dkim_keys::public_key(key.algorithm, &private).map_err(|e| {
            bad_input!(
                "dkim.private_key_path {}: {e:#}",
                key.private_key_path.display()
            )
        })?;
        if i > 0 {
            println!();
        }
        println!(
            "{} key {} of {}:",
            algorithm_name(key.algorithm),
            key.selector,
            key.domain
        );
        print_record(&key.selector, &key.domain, key.algorithm, &public);
    }
    Ok(0)
}
