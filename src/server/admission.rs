//! Which connections are served: at most `max_connections` at once, at most
//! `max_connections_per_client` from one client, and, when every slot is
//! taken, connections idle between requests give theirs up to a newcomer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::watch::Activity;

/// Shared by the accept loop and every connection it serves.
pub struct Admission {
    permits: Arc<Semaphore>,
    per_client: usize,
    table: Mutex<Table>,
    /// Pinged when a connection finishes a request (it may now be shed).
    became_idle: Arc<Notify>,
}

#[derive(Default)]
struct Table {
    per_client: HashMap<IpAddr, usize>,
    open: HashMap<u64, (IpAddr, Arc<Activity>)>,
    next_id: u64,
}

/// A connection counted against its client's cap until dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    client: IpAddr,
    id: u64,
}

impl Admission {
    pub fn new(max_connections: u32, per_client: u32) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max_connections as usize)),
            per_client: per_client as usize,
            table: Mutex::new(Table::default()),
            became_idle: Arc::new(Notify::new()),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What a new connection's watchdog pings when it goes idle.
    pub fn idle_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.became_idle)
    }

    /// Counts a new connection from `peer`. A client at its cap makes room
    /// by having its own connection idle the longest close (a browser or
    /// pool that opened many and now keeps them alive); `None` when all of
    /// its connections are busy.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Ticket> {
        let client = client_of(peer);
        let mut table = self.table();
        let count = table.per_client.get(&client).copied().unwrap_or(0);
        if count >= self.per_client {
            let longest_idle = table
                .open
                .values()
                .filter(|(owner, activity)| *owner == client && !activity.is_shed())
                .filter_map(|(_, activity)| activity.idle_since().map(|since| (since, activity)))
                .min_by_key(|(since, _)| *since);
            match longest_idle {
                Some((_, activity)) => activity.shed(),
                None => return None,
            }
        }
        *table.per_client.entry(client).or_insert(0) += 1;
        let id = table.next_id;
        table.next_id += 1;
        Some(Ticket {
            admission: Arc::clone(self),
            client,
            id,
        })
    }

    /// A free slot. While none is, the connection idle the longest is asked
    /// to close, so kept-alive connections waiting for nothing cannot keep
    /// a new client out. Cancel-safe.
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        loop {
            if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
                return Some(permit);
            }
            let became_idle = self.became_idle.notified();
            self.shed_longest_idle();
            tokio::select! {
                permit = Arc::clone(&self.permits).acquire_owned() => return permit.ok(),
                () = became_idle => {}
            }
        }
    }

    /// Asks the connection idle the longest to close, unless one asked
    /// before is still closing: one slot is wanted, not one per wake-up.
    fn shed_longest_idle(&self) {
        let table = self.table();
        if table.open.values().any(|(_, activity)| activity.is_shed()) {
            return;
        }
        let longest = table
            .open
            .values()
            .filter_map(|(_, activity)| activity.idle_since().map(|since| (since, activity)))
            .min_by_key(|(since, _)| *since);
        if let Some((_, activity)) = longest {
            activity.shed();
        }
    }
}

impl Ticket {
    /// Lets the connection, now served, be shed when it goes idle.
    pub fn track(&self, activity: &Arc<Activity>) {
        let mut table = self.admission.table();
        table
            .open
            .insert(self.id, (self.client, Arc::clone(activity)));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut table = self.admission.table();
        table.open.remove(&self.id);
        if let Some(count) = table.per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                table.per_client.remove(&self.client);
            }
        }
    }
}

/// The client an address belongs to: an IPv4 address, or the /64 of an IPv6
/// one (a single host usually holds a whole /64), as for sign-in codes.
fn client_of(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_ipv4_addresses_or_ipv6_slash_64s() {
        let parse = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(client_of(parse("::ffff:192.0.2.7")), parse("192.0.2.7"));
        assert_eq!(
            client_of(parse("2001:db8:1:2:aaaa::1")),
            client_of(parse("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            client_of(parse("2001:db8:1:2::1")),
            client_of(parse("2001:db8:1:3::1"))
        );
    }
}
