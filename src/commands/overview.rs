//! `herald status` without an issue: every issue version with its state,
//! scheduled or start time, ledger counts and last activity.

use crate::cli::StatusFormat;
use crate::domain::DeliveryState;
use crate::store::Store;

/// The ledger states shown as columns, with their headings.
const COLUMNS: [(DeliveryState, &str); 8] = [
    (DeliveryState::Sent, "SENT"),
    (DeliveryState::Pending, "PENDING"),
    (DeliveryState::Claimed, "CLAIMED"),
    (DeliveryState::Deferred, "DEFERRED"),
    (DeliveryState::Failed, "FAILED"),
    (DeliveryState::Unknown, "UNKNOWN"),
    (DeliveryState::Skipped, "SKIPPED"),
    (DeliveryState::Cancelled, "CANCELLED"),
];

pub async fn run(store: &Store, format: StatusFormat) -> anyhow::Result<u8> {
    let issues = store.issues_overview().await?;
    match format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&issues)?),
        StatusFormat::Table if issues.is_empty() => {
            println!("no issues yet (`herald schedule` or `herald send --live` registers one)")
        }
        StatusFormat::Table => {
            let mut header = format!(
                "{:<28} {:<10} {:<25}",
                "ISSUE", "STATE", "SCHEDULED/STARTED"
            );
            for (_, title) in COLUMNS {
                header.push_str(&format!(" {title:>9}"));
            }
            println!("{header}  LAST ACTIVITY");
            for i in &issues {
                let name = if i.version == 1 {
                    i.slug.clone()
                } else {
                    format!("{} (v{})", i.slug, i.version)
                };
                let when = i
                    .scheduled_at
                    .as_deref()
                    .or(i.started_at.as_deref())
                    .unwrap_or("-");
                let mut line = format!("{name:<28} {:<10} {when:<25}", i.state);
                for (state, _) in COLUMNS {
                    line.push_str(&format!(" {:>9}", i.counts.get(state)));
                }
                println!("{line}  {}", i.last_activity);
            }
        }
    }
    Ok(0)
}
