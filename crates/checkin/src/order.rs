//! An operator's order (`swarmboot node command …`): what the CLI asks the running server to
//! queue for one node or all. The CLI signs it with the server's own key (only root and the
//! service can read it), so the server's HTTP listener can take it on any address without
//! anyone else on the LAN being able to command the fleet; it is good for a minute, and each
//! is taken once.
//!
//! On the wire: `POST /api/v1/orders`, the JSON body, and the signature in [`SIGNATURE_HEADER`]
//! (over `"swarmboot order v1\0"` and the body exactly as sent).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use swarmboot_manifest::{PublicKey, SigningKey};

use crate::command::Action;

pub const SIGNATURE_HEADER: &str = "swarmboot-order-signature";
const DOMAIN: &[u8] = b"swarmboot order v1\0";
/// Most bytes an order may have.
pub const MAX_ORDER_LEN: usize = 4096;
/// How far an order's time may be from the server's, in seconds.
pub const MAX_SKEW: u64 = 60;
/// Orders remembered to refuse a second delivery (more than a minute's worth at any pace an
/// operator types).
const REMEMBERED: usize = 1024;

/// One order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// A MAC address, or `all` (every live node).
    pub target: String,
    pub action: Action,
    /// Unix seconds when the CLI made it.
    pub issued: u64,
    /// 16 random bytes, hex: the order's name.
    pub id: String,
}

/// What the server answers: each node's command number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub commands: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("an order of {0} bytes, more than {MAX_ORDER_LEN}")]
    TooLong(usize),
    #[error("not signed with this server's key (orders come from `swarmboot node command` on the server)")]
    NotSigned,
    #[error("not an order: {0}")]
    Malformed(String),
    #[error("made at {issued} (unix time), {skew} s from the server's clock; more than {MAX_SKEW} s apart is refused")]
    Stale { issued: u64, skew: u64 },
    #[error("order {0} was taken already")]
    Repeated(String),
}

/// The body and signature (hex) the CLI sends.
pub fn seal(key: &SigningKey, o: &Order) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(o).expect("an order serializes");
    let sig = key.sign_in(DOMAIN, &body);
    (body, sig)
}

/// The server's memory of the orders it took (the last [`REMEMBERED`] by default).
#[derive(Debug)]
pub struct Taken {
    ids: VecDeque<String>,
    capacity: usize,
}

impl Default for Taken {
    fn default() -> Self {
        Taken::remembering(REMEMBERED)
    }
}

impl Taken {
    /// Remembering the last `capacity` orders.
    pub fn remembering(capacity: usize) -> Self {
        Taken { ids: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Reads an order signed with `server` at unix time `now`, taking it once.
    pub fn open(&mut self, body: &[u8], signature: Option<&str>, server: &PublicKey, now: u64) -> Result<Order, OrderError> {
        if body.len() > MAX_ORDER_LEN {
            return Err(OrderError::TooLong(body.len()));
        }
        server.verify_in(DOMAIN, body, signature.ok_or(OrderError::NotSigned)?).map_err(|_| OrderError::NotSigned)?;
        let o: Order = serde_json::from_slice(body).map_err(|e| OrderError::Malformed(e.to_string()))?;
        let skew = now.abs_diff(o.issued);
        if skew > MAX_SKEW {
            return Err(OrderError::Stale { issued: o.issued, skew });
        }
        if self.ids.contains(&o.id) {
            return Err(OrderError::Repeated(o.id));
        }
        if self.ids.len() == self.capacity {
            self.ids.pop_front();
        }
        self.ids.push_back(o.id.clone());
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(issued: u64, id: &str) -> Order {
        Order { target: "all".into(), action: Action::Reboot, issued, id: id.into() }
    }

    #[test]
    fn an_order_signed_with_the_servers_key_is_taken_once_and_only_fresh() {
        let server = SigningKey::from_seed([1; 32]);
        let mut taken = Taken::default();
        let (body, sig) = seal(&server, &order(1000, "aa"));
        assert_eq!(taken.open(&body, Some(&sig), &server.public(), 1030), Ok(order(1000, "aa")));
        assert_eq!(taken.open(&body, Some(&sig), &server.public(), 1031), Err(OrderError::Repeated("aa".into())));
        let (body, sig) = seal(&server, &order(1000, "bb"));
        assert_eq!(taken.open(&body, Some(&sig), &server.public(), 1061), Err(OrderError::Stale { issued: 1000, skew: 61 }));
        // Signed by anyone else, unsigned, or changed: refused.
        let (body, sig) = seal(&SigningKey::from_seed([2; 32]), &order(1000, "cc"));
        assert_eq!(taken.open(&body, Some(&sig), &server.public(), 1000), Err(OrderError::NotSigned));
        assert_eq!(taken.open(&body, None, &server.public(), 1000), Err(OrderError::NotSigned));
        let (body, sig) = seal(&server, &order(1000, "dd"));
        let changed = String::from_utf8(body).unwrap().replace("reboot", "rescan-disks");
        assert_eq!(taken.open(changed.as_bytes(), Some(&sig), &server.public(), 1000), Err(OrderError::NotSigned));
        // Bounded memory.
        let mut taken = Taken::remembering(4);
        for i in 0..9 {
            let (body, sig) = seal(&server, &order(1000, &format!("n{i}")));
            taken.open(&body, Some(&sig), &server.public(), 1000).unwrap();
        }
        assert_eq!(taken.ids.len(), 4);
    }
}
