//! The loops of a replica among others (see `crate::cluster`): following the other replicas'
//! changes, holding the leader lease, and sharing budget spend.

use std::time::Duration;

use modelgate_store::cluster::Lease;
use tokio::sync::watch;

use crate::state::AppState;

/// The advisory-lock key of the leader lease ("mgleader" in ASCII, so it never collides with an
/// application's small integers).
const LEADER_KEY: i64 = 0x6d67_6c65_6164_6572;
/// How often the generation is polled, and the lease taken or checked.
const TICK: Duration = Duration::from_secs(1);

/// Rebuilds this replica's snapshot (and budgets) after another replica's change; `generation`
/// is what the database said before the rebuild began.
async fn catch_up(app: &AppState, generation: Option<i64>) {
    match app.reload().await {
        Ok(()) => {
            if let Some(g) = generation {
                app.cluster.saw(g);
            }
            app.cluster.record(Ok(()));
        }
        Err(e) => app.cluster.record(Err(e.to_string())),
    }
}

/// Follows the other replicas' changes until `stop`.
pub async fn follow(app: AppState, mut stop: watch::Receiver<bool>) {
    let Some(feed) = app.cluster.feed().map(|(f, _)| f.clone()) else { return };
    let mut listener = None;
    let mut tick = tokio::time::interval(TICK);
    loop {
        if listener.is_none() {
            match feed.listen().await {
                Ok(l) => {
                    listener = Some(l);
                    // Whatever was announced while nobody listened.
                    catch_up(&app, None).await;
                }
                Err(e) => app.cluster.record(Err(e.to_string())),
            }
        }
        let heard = async {
            match listener.as_mut() {
                Some(l) => l.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            heard = heard => match heard {
                Ok(Some(first)) => {
                    // The whole burst, then one rebuild for all of it.
                    let mut newest = None;
                    let mut change = Some(first);
                    while let Some(c) = change {
                        if c.replica != app.cluster.replica {
                            newest = newest.max(Some(c.generation));
                        }
                        change = listener.as_mut().and_then(|l| l.next_buffered());
                    }
                    if newest.is_some() {
                        catch_up(&app, newest).await;
                    }
                }
                // The connection was re-established: announcements may have been missed.
                Ok(None) => catch_up(&app, None).await,
                Err(e) => {
                    listener = None;
                    app.cluster.record(Err(e.to_string()));
                }
            },
            _ = tick.tick() => match feed.generation().await {
                Ok(g) if g != app.cluster.seen() => catch_up(&app, Some(g)).await,
                Ok(_) => app.cluster.record(Ok(())),
                Err(e) => app.cluster.record(Err(e.to_string())),
            },
        }
        if app.cluster.is_leader() {
            super::deployer::adopt_pending(&app).await;
        }
    }
}

/// Takes the leader lease when nobody holds it, and keeps it while its connection lives, until
/// `stop`.
pub async fn lead(app: AppState, mut stop: watch::Receiver<bool>) {
    let Some(url) = app.cluster.feed().map(|(_, u)| u.to_string()) else { return };
    let mut lease: Option<Lease> = None;
    loop {
        match lease.as_mut() {
            None => match Lease::try_take(&url, LEADER_KEY).await {
                Ok(Some(l)) => {
                    lease = Some(l);
                    app.cluster.set_leader(true);
                    tracing::info!(replica = %app.cluster.replica, "this replica leads: alerts, deployments and retention run here");
                    super::deployer::adopt_pending(&app).await;
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "could not try the leader lease"),
            },
            Some(l) => {
                if !l.holds(TICK * 2).await {
                    app.cluster.set_leader(false);
                    lease = None;
                    tracing::warn!("lost the leader lease (the database connection failed); another replica may lead");
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
    app.cluster.set_leader(false);
    if let Some(l) = lease {
        l.release().await;
    }
}

/// Shares the spend of every budget policy with the other replicas through Redis, every
/// `policy::budgets::SHARE_EVERY`, until `stop`.
pub async fn share_budgets(app: AppState, mut stop: watch::Receiver<bool>) {
    let Some(redis) = app.counters.shared_store().cloned() else { return };
    let mut tick = tokio::time::interval(crate::policy::budgets::SHARE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => app.budgets.share(&redis).await,
            _ = stop.changed() => {
                // What this replica spent last goes before it stops.
                app.budgets.share(&redis).await;
                return;
            }
        }
    }
}
