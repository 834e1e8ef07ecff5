//! Named leases: one holder at a time for a job (the live send of one
//! issue version, a `run-due` pass), a row in the same database the sends
//! write. A lease is taken with an expiry and renewed every third of its
//! length while the guard lives; one whose holder died on this machine
//! (see [`crate::holder`]) is taken over at once, any other once expired.
//! A renewal that finds another holder marks the lease lost: the work it
//! guarded must stop.
//!
//! On PostgreSQL a live send's lease is shared instead: any number of
//! processes, on any host, register as senders of the issue and renew their
//! registration every second; each learns how many live senders there are
//! (its share of the configured rates). A renewal that finds its own
//! registration lapsed marks the lease lost, since others may have resolved
//! the rows it had claimed.

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
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// One holder at a time (the `leases` table).
    Exclusive,
    /// Any number of registered senders of one issue (the `senders` table).
    Shared { issue_id: i64 },
}

/// How often a shared lease is renewed (and the share recounted), at most.
const SHARE_REFRESH: Duration = Duration::from_secs(1);

/// Whether this process may still hand a message to SMTP under its lease:
/// for a shared lease, only while its last successful renewal is less than
/// two thirds of the lease old. Past that, others may be about to take its
/// rows (they do once the registration lapses), so it hands nothing more
/// out, whether or not the next renewal will succeed.
#[derive(Clone, Debug)]
pub struct Liveness {
    /// `None`: an exclusive lease, always live while held.
    renewed: Option<std::sync::Arc<std::sync::Mutex<std::time::Instant>>>,
    limit: Duration,
}

impl Liveness {
    /// Always live (an exclusive lease, or no lease).
    pub fn always() -> Liveness {
        Liveness {
            renewed: None,
            limit: Duration::MAX,
        }
    }

    /// May a message be handed to SMTP now?
    pub fn ok(&self) -> bool {
        match &self.renewed {
            None => true,
            Some(r) => r.lock().unwrap_or_else(|e| e.into_inner()).elapsed() < self.limit,
        }
    }

    /// A renewal that started at `at` succeeded.
    fn mark(&self, at: std::time::Instant) {
        if let Some(r) = &self.renewed {
            *r.lock().unwrap_or_else(|e| e.into_inner()) = at;
        }
    }
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
            kind: Kind::Exclusive,
        }
    }

    /// The lease of one issue version's live send: exclusive, or `shared`
    /// among any number of senders.
    pub fn for_send(issue_id: i64, length: Duration, shared: bool) -> Lease {
        let mut lease = Lease::new(send_lease_name(issue_id), length);
        if shared {
            lease.kind = Kind::Shared { issue_id };
        }
        lease
    }

    /// Take the lease and keep it renewed while the guard lives.
    pub async fn take(self, store: &Store) -> anyhow::Result<Taken> {
        let (lost_tx, lost) = watch::channel(false);
        let (share_tx, share) = watch::channel(1);
        let mut liveness = Liveness::always();
        let renewer = match self.kind {
            Kind::Exclusive => {
                if let Err((holder, until)) = self.try_take(store).await? {
                    return Ok(Taken::Busy { holder, until });
                }
                tokio::spawn(self.clone().renew_forever(store.clone(), lost_tx))
            }
            Kind::Shared { issue_id } => {
                // Senders of this host that died are known dead at once;
                // others once their registration lapses.
                for old in store.senders(issue_id).await? {
                    if crate::holder::is_dead(&old) {
                        tracing::warn!(lease = %self.name, previous = %old, "a previous sender is gone");
                        store.remove_sender(issue_id, &old).await?;
                    }
                }
                let started = std::time::Instant::now();
                let beat = self.beat(store, issue_id, true).await?;
                share_tx.send_replace(beat.live.max(1));
                liveness = Liveness {
                    renewed: Some(std::sync::Arc::new(std::sync::Mutex::new(
                        std::time::Instant::now(),
                    ))),
                    limit: self.length * 2 / 3,
                };
                liveness.mark(started);
                tokio::spawn(self.clone().beat_forever(
                    store.clone(),
                    issue_id,
                    lost_tx,
                    share_tx,
                    liveness.clone(),
                ))
            }
        };
        Ok(Taken::Held(LeaseGuard {
            held: Some((self, store.clone())),
            renewer,
            lost,
            share,
            liveness,
        }))
    }

    /// Register or renew this sender until one lease length from now.
    async fn beat(
        &self,
        store: &Store,
        issue_id: i64,
        first: bool,
    ) -> anyhow::Result<crate::store::senders::Beat> {
        Ok(store
            .sender_beat(
                issue_id,
                &self.holder,
                chrono::Utc::now(),
                self.length,
                first,
            )
            .await?)
    }

    /// Renew a shared lease every second (or third of its length) and
    /// publish the number of live senders; stop once it had lapsed.
    async fn beat_forever(
        self,
        store: Store,
        issue_id: i64,
        lost: watch::Sender<bool>,
        share: watch::Sender<i64>,
        liveness: Liveness,
    ) {
        let mut tick = tokio::time::interval((self.length / 3).min(SHARE_REFRESH));
        tick.tick().await;
        loop {
            tick.tick().await;
            let started = std::time::Instant::now();
            match self.beat(&store, issue_id, false).await {
                Ok(beat) if beat.lapsed => {
                    tracing::error!(lease = %self.name, "this sender's registration lapsed; others may have taken its rows");
                    lost.send_replace(true);
                    return;
                }
                Ok(beat) => {
                    liveness.mark(started);
                    share.send_if_modified(|n| {
                        std::mem::replace(n, beat.live.max(1)) != beat.live.max(1)
                    });
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "could not renew the sender registration")
                }
            }
        }
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

impl Lease {
    /// Release the lease row, or remove the sender registration.
    async fn give_back(&self, store: &Store) -> Result<(), crate::store::StoreError> {
        match self.kind {
            Kind::Exclusive => store.release_lease(&self.name, &self.holder).await,
            Kind::Shared { issue_id } => store.remove_sender(issue_id, &self.holder).await,
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
    share: watch::Receiver<i64>,
    liveness: Liveness,
}

impl LeaseGuard {
    /// The number of processes sharing the lease now (1 for an exclusive
    /// one), updated as senders join and leave.
    pub fn share(&self) -> watch::Receiver<i64> {
        self.share.clone()
    }

    /// Whether this process may still hand messages to SMTP under the lease.
    pub fn liveness(&self) -> Liveness {
        self.liveness.clone()
    }

    /// This process's holder name (what its claimed rows carry).
    pub fn holder(&self) -> &str {
        self.held
            .as_ref()
            .map_or("", |(lease, _)| lease.holder.as_str())
    }

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
            if let Err(e) = lease.give_back(&store).await {
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
                    let _ = lease.give_back(&store).await;
                });
            }
        }
    }
}
