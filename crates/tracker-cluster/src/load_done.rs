//! Part of the join: which loaded peers' completed downloads the cluster has counted already
//! (members of the swarm's `done` set), so that a node started empty or restarted does not
//! count a repeated `completed` from such a peer again, not even for one reply.

use redis::aio::ConnectionLike;
use tracker_core::InfoHash;

use crate::{ClusterError, Shared};

/// For each loaded peer set (`parsed[i]` with members `sets[i]`), whether each member is in
/// its swarm's `done` set. One pipeline of `SMISMEMBER`, one command per non-empty set.
pub(crate) async fn counted<C: ConnectionLike + Send>(
    shared: &Shared,
    con: &mut C,
    parsed: &[(InfoHash, bool, bool)],
    sets: &[Vec<(Vec<u8>, f64)>],
) -> Result<Vec<Vec<bool>>, ClusterError> {
    let mut pipe = redis::pipe();
    for ((ih, _, _), members) in parsed.iter().zip(sets) {
        if members.is_empty() {
            continue;
        }
        let cmd = pipe.cmd("SMISMEMBER").arg(shared.keys.done(ih));
        for (m, _) in members {
            cmd.arg(m);
        }
    }
    let mut found: Vec<Vec<bool>> = if pipe.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(con).await?
    };
    found.reverse();
    Ok(sets
        .iter()
        .map(|members| {
            if members.is_empty() {
                Vec::new()
            } else {
                found.pop().unwrap_or_default()
            }
        })
        .collect())
}
