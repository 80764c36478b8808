//! Where the time goes while a benchmark runs: CPU used by this process, the Postgres backends
//! of the benchmark's database, other Postgres processes and the Kafka broker (from `/proc`),
//! and what the benchmark database's backends are doing (sampled from `pg_stat_activity`).
//!
//! Linux only; elsewhere the CPU split is simply absent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::task::JoinHandle;

/// CPU counters of the machine and of every process at one moment.
pub struct CpuSnapshot {
    /// Jiffies of all CPUs together, busy and idle.
    total: u64,
    /// Idle and I/O-wait jiffies of all CPUs.
    idle: u64,
    /// Number of CPUs.
    cpus: usize,
    /// pid -> (name, user + system jiffies).
    processes: HashMap<u32, (String, u64)>,
}

impl CpuSnapshot {
    /// Reads `/proc`; `None` where it is unavailable.
    pub fn take() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let mut total = 0;
        let mut idle = 0;
        let mut cpus = 0;
        for line in stat.lines() {
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("cpu") => {
                    let values: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
                    // user nice system idle iowait irq softirq steal (guest is inside user).
                    total = values.iter().take(8).sum();
                    idle =
                        values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
                }
                Some(name) if name.starts_with("cpu") => cpus += 1,
                _ => {}
            }
        }
        let mut processes = HashMap::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(process) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|s| parse_process_stat(&s))
            {
                processes.insert(pid, process);
            }
        }
        Some(Self {
            total,
            idle,
            cpus: cpus.max(1),
            processes,
        })
    }
}

/// `(name, utime + stime)` from the text of `/proc/PID/stat`.
pub(crate) fn parse_process_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    // After the name: state is field 3, utime and stime are fields 14 and 15.
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// CPU used between two snapshots, in cores (1.0 = one CPU busy all the time), by group.
pub struct CpuSplit {
    /// CPUs of the machine.
    pub cpus: usize,
    /// Cores busy machine-wide.
    pub busy: f64,
    /// (group, cores), largest first; `unattributed` is busy time no live process accounts for
    /// (the kernel, interrupts, processes that exited).
    pub groups: Vec<(String, f64)>,
}

/// How the processes are grouped.
pub struct Groups<'a> {
    /// This benchmark's pid.
    pub own_pid: u32,
    /// Pids of the Postgres backends connected to the benchmark's database.
    pub db_backends: &'a HashSet<u32>,
    /// The Kafka broker's port: a `tansu` process whose command line names it is this run's.
    pub broker_port: Option<u16>,
}

impl Groups<'_> {
    fn of(&self, pid: u32, name: &str) -> &'static str {
        if pid == self.own_pid {
            "bench process (clients, services, saga, relay, projections, rdkafka)"
        } else if self.db_backends.contains(&pid) {
            "postgres backends of the benchmark database"
        } else if name.starts_with("postgres") {
            "postgres, other processes (WAL writer, checkpointer, other databases)"
        } else if name == "tansu" {
            match self.broker_port {
                Some(port) if cmdline(pid).contains(&format!(":{port}")) => {
                    "tansu broker of this run"
                }
                _ => "tansu, other brokers",
            }
        } else {
            "other processes"
        }
    }
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .unwrap_or_default()
}

/// The CPU used between `start` and `end`, grouped by `groups`.
pub fn cpu_split(start: &CpuSnapshot, end: &CpuSnapshot, groups: &Groups<'_>) -> CpuSplit {
    let elapsed = end.total.saturating_sub(start.total).max(1) as f64;
    let per_core = elapsed / end.cpus as f64;
    let busy_jiffies = elapsed - end.idle.saturating_sub(start.idle) as f64;
    let mut by_group: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut attributed = 0u64;
    for (pid, (name, used)) in &end.processes {
        let before = start.processes.get(pid).map_or(0, |(_, used)| *used);
        let delta = used.saturating_sub(before);
        if delta == 0 {
            continue;
        }
        attributed += delta;
        *by_group.entry(groups.of(*pid, name)).or_default() += delta;
    }
    let mut split: Vec<(String, f64)> = by_group
        .into_iter()
        .map(|(group, jiffies)| (group.to_owned(), jiffies as f64 / per_core))
        .collect();
    let unattributed = (busy_jiffies - attributed as f64).max(0.0) / per_core;
    split.push((
        "unattributed (kernel, interrupts, exited)".into(),
        unattributed,
    ));
    split.sort_by(|a, b| b.1.total_cmp(&a.1));
    CpuSplit {
        cpus: end.cpus,
        busy: busy_jiffies / per_core,
        groups: split,
    }
}

/// Counters of `pg_stat_database` for one database (Postgres flushes them within a second).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DbCounters {
    /// Committed transactions.
    pub commits: i64,
    /// Rolled-back transactions.
    pub rollbacks: i64,
    /// Rows returned by scans.
    pub returned: i64,
    /// Rows inserted.
    pub inserted: i64,
    /// Rows updated.
    pub updated: i64,
}

impl DbCounters {
    /// Reads the counters of `database`.
    pub async fn take(pool: &PgPool, database: &str) -> Result<Self, sqlx::Error> {
        let (commits, rollbacks, returned, inserted, updated): (i64, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT xact_commit, xact_rollback, tup_returned, tup_inserted, tup_updated \
                 FROM pg_stat_database WHERE datname = $1",
            )
            .bind(database)
            .fetch_one(pool)
            .await?;
        Ok(Self {
            commits,
            rollbacks,
            returned,
            inserted,
            updated,
        })
    }

    /// What happened between `earlier` and these counters.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            commits: self.commits - earlier.commits,
            rollbacks: self.rollbacks - earlier.rollbacks,
            returned: self.returned - earlier.returned,
            inserted: self.inserted - earlier.inserted,
            updated: self.updated - earlier.updated,
        }
    }
}

/// Pids of the backends connected to `database` now.
pub async fn backends_of(pool: &PgPool, database: &str) -> Result<HashSet<u32>, sqlx::Error> {
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .fetch_all(pool)
        .await?;
    Ok(pids
        .into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .collect())
}

/// What `pg_stat_activity` showed over a run.
#[derive(Debug, Default)]
pub struct Activity {
    /// Samples taken.
    pub samples: u64,
    /// Backends of the benchmark database by state (`active: CPU`, `active: Lock:transactionid`,
    /// `idle`, ...), summed over the samples.
    pub states: BTreeMap<String, u64>,
    /// Active backends of the benchmark database by statement (its first words), summed.
    pub statements: BTreeMap<String, u64>,
    /// Active backends of other databases on the same server, summed.
    pub other_databases_active: u64,
    /// Every backend pid of the benchmark database seen.
    pub backends: HashSet<u32>,
}

impl Activity {
    /// `map`'s entries as averages per sample, largest first.
    pub fn averages(&self, map: &BTreeMap<String, u64>) -> Vec<(String, f64)> {
        let samples = self.samples.max(1) as f64;
        let mut out: Vec<(String, f64)> = map
            .iter()
            .map(|(k, n)| (k.clone(), *n as f64 / samples))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

/// Samples `pg_stat_activity` every `every` from `from` until `until` (through `pool`, whose own
/// backend is left out).
pub fn sample_activity(
    pool: PgPool,
    database: String,
    every: Duration,
    from: Instant,
    until: Instant,
) -> JoinHandle<Activity> {
    tokio::spawn(async move {
        let mut activity = Activity::default();
        tokio::time::sleep_until(from.into()).await;
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while Instant::now() < until {
            ticks.tick().await;
            let rows: Result<Vec<ActivityRow>, _> = sqlx::query_as(
                "SELECT pid, datname = $1, coalesce(state, ''), coalesce(wait_event_type, ''), \
                 coalesce(wait_event, ''), left(regexp_replace(query, '\\s+', ' ', 'g'), 72) \
                 FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            )
            .bind(&database)
            .fetch_all(&pool)
            .await;
            match rows {
                Ok(rows) => {
                    activity.samples += 1;
                    for row in rows {
                        activity.add(row);
                    }
                }
                Err(err) => tracing::debug!(error = %err, "pg_stat_activity sample failed"),
            }
        }
        activity
    })
}

/// pid, ours, state, wait event type, wait event, statement prefix.
type ActivityRow = (i32, Option<bool>, String, String, String, Option<String>);

impl Activity {
    fn add(&mut self, (pid, ours, state, wait_type, wait, query): ActivityRow) {
        if ours != Some(true) {
            if state == "active" {
                self.other_databases_active += 1;
            }
            return;
        }
        if let Ok(pid) = u32::try_from(pid) {
            self.backends.insert(pid);
        }
        let waiting = if wait_type.is_empty() {
            "CPU".to_owned()
        } else {
            format!("{wait_type}:{wait}")
        };
        let key = match state.as_str() {
            "idle" => "idle".to_owned(),
            "active" => format!("active: {waiting}"),
            other => format!("{other}: {waiting}"),
        };
        *self.states.entry(key).or_default() += 1;
        if state == "active" {
            let statement = query.unwrap_or_default();
            *self.statements.entry(statement).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_process_stat_line_with_spaces_in_the_name() {
        let line = "42 (tokio-runtime w) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1";
        assert_eq!(
            parse_process_stat(line),
            Some(("tokio-runtime w".to_owned(), 325))
        );
    }

    #[test]
    fn activity_counts_states_of_the_benchmark_database_only() {
        let mut activity = Activity {
            samples: 2,
            ..Activity::default()
        };
        activity.add((
            1,
            Some(true),
            "active".into(),
            "Lock".into(),
            "transactionid".into(),
            Some("UPDATE x".into()),
        ));
        activity.add((
            2,
            Some(true),
            "idle".into(),
            "Client".into(),
            "ClientRead".into(),
            None,
        ));
        activity.add((
            3,
            Some(false),
            "active".into(),
            String::new(),
            String::new(),
            None,
        ));
        assert_eq!(activity.states["active: Lock:transactionid"], 1);
        assert_eq!(activity.states["idle"], 1);
        assert_eq!(activity.other_databases_active, 1);
        assert_eq!(activity.averages(&activity.statements)[0].1, 0.5);
        assert!(activity.backends.contains(&1) && !activity.backends.contains(&3));
    }
}
