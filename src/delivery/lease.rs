//! Named leases: one holder at a time for a job (the live send of one
//! issue version, a `run-due` pass), a row in the same database the sends
//! write. A lease is taken with an expiry and renewed every third of its
//! length while the guard lives; one whose holder died on this machine
//! (see [`crate::holder`]) is taken over at once, any other once expired.
//! A renewal that finds another holder marks the lease lost: the work it
//! guarded must stop.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::{format_time, Store};

/// The shortest lease (renewed every third of it).
const MIN_LENGTH: Duration = Duration::from_secs(5);

/// A lease this process may take.
#[derive(Debug, Clone)]
pub struct Lease {
    name: String,
    holder: String,
    length: Duration,
}

/// What taking a lease found.
pub enum Taken {
    /// This process holds it until the guard is dropped or released.
    Held(LeaseGuard),
    /// Another live process holds it.
    Busy { holder: String, until: String },
}

impl Lease {
    /// The lease `name` for this process, `length` long (at least 5 s).
    pub fn new(name: impl Into<String>, length: Duration) -> Lease {
        Lease {
            name: name.into(),
            holder: crate::holder::current(),
            length: length.max(MIN_LENGTH),
        }
    }

    /// The lease of one issue version's live send.
    pub fn for_send(issue_id: i64, length: Duration) -> Lease {
        Lease::new(send_lease_name(issue_id), length)
    }

    /// Take the lease and keep it renewed while the guard lives.
    pub async fn take(self, store: &Store) -> anyhow::Result<Taken> {
        if let Err((holder, until)) = self.try_take(store).await? {
            return Ok(Taken::Busy { holder, until });
        }
        let (lost_tx, lost) = watch::channel(false);
        let renewer = tokio::spawn(self.clone().renew_forever(store.clone(), lost_tx));
        Ok(Taken::Held(LeaseGuard {
            held: Some((self, store.clone())),
            renewer,
            lost,
        }))
    }

    /// Take or renew the lease once: Err((holder, until)) when another
    /// live process holds it.
    async fn try_take(&self, store: &Store) -> anyhow::Result<Result<(), (String, String)>> {
        let now = chrono::Utc::now();
        let until = format_time(now + chrono::Duration::from_std(self.length).unwrap_or_default());
        if store
            .acquire_lease(&self.name, &self.holder, &format_time(now), &until)
            .await?
        {
            return Ok(Ok(()));
        }
        match store.lease_holder(&self.name).await? {
            Some((old, _)) if crate::holder::is_dead(&old) => {
                tracing::warn!(lease = %self.name, previous = %old, "the previous holder is gone; taking over");
                if store
                    .replace_lease(&self.name, &old, &self.holder, &until)
                    .await?
                {
                    return Ok(Ok(()));
                }
                let (holder, until) = store
                    .lease_holder(&self.name)
                    .await?
                    .unwrap_or_else(just_released);
                Ok(Err((holder, until)))
            }
            Some(held) => Ok(Err(held)),
            None => Ok(Err(just_released())),
        }
    }

    /// Renew every third of the lease length; stop once another process
    /// holds it (marking it lost).
    async fn renew_forever(self, store: Store, lost: watch::Sender<bool>) {
        let mut tick = tokio::time::interval(self.length / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            match self.try_take(&store).await {
                Ok(Ok(())) => {}
                Ok(Err((holder, _))) => {
                    tracing::error!(lease = %self.name, %holder, "lost the lease to another process");
                    lost.send_replace(true);
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "could not renew the lease")
                }
            }
        }
    }
}

/// The name of the lease on one issue version's live send.
pub fn send_lease_name(issue_id: i64) -> String {
    format!("send:{issue_id}")
}

fn just_released() -> (String, String) {
    ("(just released)".into(), "-".into())
}

/// A held lease: renewed in the background, released by [`release`] or,
/// failing that, when dropped.
///
/// [`release`]: LeaseGuard::release
pub struct LeaseGuard {
    held: Option<(Lease, Store)>,
    renewer: tokio::task::JoinHandle<()>,
    lost: watch::Receiver<bool>,
}

impl LeaseGuard {
    /// Resolves once a renewal found another holder.
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            let _ = lost.wait_for(|l| *l).await;
        }
    }

    /// Stop renewing and give the lease back (if this process still holds
    /// it).
    pub async fn release(mut self) {
        self.renewer.abort();
        if let Some((lease, store)) = self.held.take() {
            if let Err(e) = store.release_lease(&lease.name, &lease.holder).await {
                tracing::warn!(lease = %lease.name, error = %e, "could not release the lease; it expires");
            }
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewer.abort();
        if let Some((lease, store)) = self.held.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = store.release_lease(&lease.name, &lease.holder).await;
                });
            }
        }
    }
}
