//! Part of the join: which loaded peers' completed downloads the cluster has counted already
//! (members of the swarm's `done` set), so that a node started empty or restarted does not
//! count a repeated `completed` from such a peer again, not even for one reply.

use tracker_core::InfoHash;

use crate::conn::{Con, query_each};
use crate::{ClusterError, Shared};

/// For each loaded peer set (`parsed[i]` with members `sets[i]`), whether each member is in
/// its swarm's `done` set. One `SMISMEMBER` per non-empty set: one pipeline on a standalone
/// Redis, concurrent single requests on a Cluster (the swarms sit in many slots).
pub(crate) async fn counted(
    shared: &Shared,
    con: &mut Con,
    parsed: &[(InfoHash, bool, bool)],
    sets: &[Vec<(Vec<u8>, f64)>],
) -> Result<Vec<Vec<bool>>, ClusterError> {
    let mut cmds = Vec::new();
    for ((ih, _, _), members) in parsed.iter().zip(sets) {
        if members.is_empty() {
            continue;
        }
        let mut cmd = redis::cmd("SMISMEMBER");
        cmd.arg(shared.keys.done(ih));
        for (m, _) in members {
            cmd.arg(m);
        }
        cmds.push(cmd);
    }
    let mut found: Vec<Vec<bool>> = query_each(con, cmds).await?;
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
