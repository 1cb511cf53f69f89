//! The connection layer: one standalone Redis (a reconnecting [`ConnectionManager`]) or a Redis
//! Cluster (redis-rs's `cluster_async::ClusterConnection`, which follows slot moves and
//! reconnects to nodes by itself), behind one type that the writer, the reader and the join use.
//!
//! What differs on Redis Cluster, and is handled here:
//! - a pipeline must stay in one slot (redis-rs refuses a pipeline whose keys cross slots; it
//!   routes the whole pipeline to the first key's node), so [`query_each`] sends commands of
//!   different slots as separate, concurrent requests (multiplexed on the nodes' connections);
//! - `SCAN` covers one node, so [`scan`] walks every primary from `CLUSTER NODES`, each by address.
//!
//! What does not live here: which commands are sent (the writer, the reader, the join).

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, Value};

use tracker_core::InfoHash;

use crate::ClusterError;

/// Where the shared store is, parsed from `redis_url`.
#[derive(Clone)]
pub(crate) enum Target {
    /// One Redis (`redis://` or `rediss://`).
    Single(Box<redis::Client>),
    /// A Redis Cluster, reached through these seed addresses.
    Cluster(Vec<String>),
}

impl Target {
    /// Parses `redis_url`: one address, or a comma-separated list of Redis Cluster seeds.
    pub(crate) fn parse(url: &str) -> Result<Self, ClusterError> {
        let seeds = crate::config::seeds(url);
        if seeds.len() == 1 {
            return Ok(Target::Single(Box::new(redis::Client::open(seeds[0])?)));
        }
        // Checks every seed, and that none selects a database: a Cluster only has db 0.
        for seed in &seeds {
            let info = redis::IntoConnectionInfo::into_connection_info(*seed)?;
            if info.redis_settings().db() != 0 {
                return Err(ClusterError::Config(format!(
                    "{seed}: a Redis Cluster has only database 0"
                )));
            }
        }
        Self::cluster_client(&seeds, Duration::from_secs(1))?;
        Ok(Target::Cluster(
            seeds.iter().map(|s| (*s).to_owned()).collect(),
        ))
    }

    fn cluster_client(seeds: &[&str], t: Duration) -> Result<ClusterClient, ClusterError> {
        Ok(ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(t)
            .response_timeout(t)
            .retries(1)
            .build()?)
    }

    /// A connection whose commands time out after `response` (`connect` to establish it).
    pub(crate) async fn connect(
        &self,
        connect: Duration,
        response: Duration,
    ) -> Result<Con, ClusterError> {
        let fut = async {
            match self {
                Target::Single(client) => {
                    let cfg = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(connect))
                        .set_response_timeout(Some(response))
                        .set_number_of_retries(1)
                        .set_max_delay(Duration::from_secs(1));
                    Ok(Con::Single(
                        ConnectionManager::new_with_config((**client).clone(), cfg).await?,
                    ))
                }
                Target::Cluster(seeds) => {
                    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
                    let client = ClusterClientBuilder::new(seeds)
                        .connection_timeout(connect)
                        .response_timeout(response)
                        .retries(1)
                        .build()?;
                    Ok(Con::Cluster(client.get_async_connection().await?))
                }
            }
        };
        tokio::time::timeout(connect + Duration::from_millis(100), fut)
            .await
            .map_err(|_| ClusterError::Timeout)?
    }
}

/// A connection to a standalone Redis or to a Redis Cluster; cheap to clone (both are
/// multiplexed handles).
#[derive(Clone)]
pub(crate) enum Con {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Con::Single(c) => c.req_packed_command(cmd),
            Con::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Con::Single(c) => c.req_packed_commands(cmd, offset, count),
            Con::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Con::Single(c) => c.get_db(),
            Con::Cluster(c) => c.get_db(),
        }
    }
}

impl Con {
    /// Whether this is a Redis Cluster connection (pipelines must stay in one slot).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Con::Cluster(_))
    }
}

/// Sends `cmds`, each touching keys of one slot, and returns their replies in order: one
/// pipeline on a standalone Redis; on a Cluster, one request per command, all in flight at once.
pub(crate) async fn query_each<T: FromRedisValue>(
    con: &mut Con,
    cmds: Vec<Cmd>,
) -> Result<Vec<T>, ClusterError> {
    if cmds.is_empty() {
        return Ok(Vec::new());
    }
    if !con.is_cluster() {
        let mut pipe = redis::pipe();
        for c in cmds {
            pipe.add_command(c);
        }
        return Ok(pipe.query_async(con).await?);
    }
    let all = cmds.into_iter().map(|c| {
        let mut con = con.clone();
        async move { c.query_async::<T>(&mut con).await }
    });
    Ok(futures_util::future::try_join_all(all).await?)
}

/// Sends several pipelines (each within one slot) at once; their replies in order.
pub(crate) async fn pipelines<T: FromRedisValue>(
    con: &Con,
    pipes: impl IntoIterator<Item = Pipeline>,
) -> Result<Vec<T>, ClusterError> {
    let all = pipes.into_iter().map(|p| {
        let mut con = con.clone();
        async move { p.query_async::<T>(&mut con).await }
    });
    Ok(futures_util::future::try_join_all(all).await?)
}

/// Commands grouped by swarm: one pipeline on a standalone Redis; on Redis Cluster one per
/// swarm (all of a swarm's keys share a hash tag, hence a slot: redis-rs refuses a pipeline
/// that crosses slots). Each pipeline carries an `E` its user keeps beside it.
pub(crate) struct PerSwarm<E = ()> {
    cluster: bool,
    pipes: Vec<(Pipeline, E)>,
    index: HashMap<InfoHash, usize>,
}

impl<E: Default> PerSwarm<E> {
    pub(crate) fn new(cluster: bool) -> Self {
        Self {
            cluster,
            pipes: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// The pipeline for `ih`'s keys.
    pub(crate) fn of(&mut self, ih: &InfoHash) -> &mut (Pipeline, E) {
        let at = if self.cluster {
            *self.index.entry(*ih).or_insert(self.pipes.len())
        } else {
            0
        };
        if at == self.pipes.len() {
            self.pipes.push((redis::pipe(), E::default()));
        }
        &mut self.pipes[at]
    }

    /// The pipelines, in the order of their first swarm.
    pub(crate) fn into_parts(self) -> Vec<(Pipeline, E)> {
        self.pipes
    }
}

impl PerSwarm {
    /// Sends every pipeline (all in flight at once), their commands' replies `ignore`d.
    pub(crate) async fn send(self, con: &Con) -> Result<(), ClusterError> {
        let pipes = self.pipes.into_iter().map(|(p, ())| p);
        pipelines::<()>(con, pipes.filter(|p| !p.is_empty())).await?;
        Ok(())
    }
}

/// A walk over every key matching a pattern: one `SCAN` walk on a standalone Redis, one per
/// primary on a Cluster (from `CLUSTER NODES`, each node asked by address).
pub(crate) struct Scan {
    pattern: String,
    kind: &'static str,
    count: usize,
    /// Nodes still to walk (`None`: the one standalone server); the first is being walked.
    nodes: Option<Vec<Option<(String, u16)>>>,
    cursor: u64,
}

impl Scan {
    /// Keys matching `pattern` of type `kind`, about `count` per step.
    pub(crate) fn new(pattern: String, kind: &'static str, count: usize) -> Self {
        Self {
            pattern,
            kind,
            count,
            nodes: None,
            cursor: 0,
        }
    }

    /// The next batch of keys (maybe empty); `None` when the walk is over.
    pub(crate) async fn next(
        &mut self,
        con: &mut Con,
    ) -> Result<Option<Vec<String>>, ClusterError> {
        if self.nodes.is_none() {
            let mut nodes: Vec<Option<(String, u16)>> = match con {
                Con::Single(_) => vec![None],
                Con::Cluster(c) => {
                    let text: String = redis::cmd("CLUSTER").arg("NODES").query_async(c).await?;
                    primaries(&text).into_iter().map(Some).collect()
                }
            };
            nodes.reverse();
            self.nodes = Some(nodes);
        }
        let Some(node) = self.nodes.as_ref().and_then(|n| n.last().cloned()) else {
            return Ok(None);
        };
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(self.cursor)
            .arg("MATCH")
            .arg(&self.pattern)
            .arg("COUNT")
            .arg(self.count)
            .arg("TYPE")
            .arg(self.kind);
        let (next, found): (u64, Vec<String>) = match (con, node) {
            (Con::Cluster(c), Some((host, port))) => {
                let routing =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                redis::from_redis_value(c.route_command(cmd, routing).await?)
                    .map_err(redis::RedisError::from)?
            }
            (c, _) => cmd.query_async(c).await?,
        };
        self.cursor = next;
        if next == 0 {
            self.nodes.as_mut().map(Vec::pop);
        }
        Ok(Some(found))
    }
}

/// The primaries that serve slots, from a `CLUSTER NODES` reply, as (host, port).
fn primaries(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // id addr flags master ping pong epoch link [slot ...]
            let flags = f.get(2)?;
            let serves = f.len() > 8;
            let down = flags.split(',').any(|x| x == "fail" || x == "noaddr");
            if !flags.split(',').any(|x| x == "master") || down || !serves {
                return None;
            }
            let addr = f[1].split(['@', ',']).next()?;
            let (host, port) = addr.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_are_the_masters_serving_slots() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,host-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 slave b2 0 0 2 connected
d4 [::1]:7004@17004 master - 0 0 3 connected 10923-16383
e5 127.0.0.1:7005@17005 master,fail - 0 0 4 disconnected 1
f6 127.0.0.1:7006@17006 master - 0 0 0 connected
";
        assert_eq!(
            primaries(nodes),
            vec![
                ("127.0.0.1".to_owned(), 7001),
                ("127.0.0.1".to_owned(), 7002),
                ("::1".to_owned(), 7004),
            ]
        );
    }
}
