//! One gateway under test as a child process: started from its command line, ready once it
//! answers the benchmark query, measured through `/proc` (peak RSS, CPU time), then stopped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};

/// How long a gateway may take to answer its first query.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A gateway process started for one run.
pub struct GatewayProcess {
    name: &'static str,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl GatewayProcess {
    /// Starts `program args` with `envs`, its stdout and stderr going to `log`.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let out = std::fs::File::create(&log)
            .with_context(|| format!("creating the log file {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let child = Command::new(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}: {}", program.display()))?;
        let pid = child
            .id()
            .with_context(|| format!("{name} exited at once"))?;
        tracing::info!(gateway = name, pid, "gateway started");
        Ok(Self {
            name,
            child,
            pid,
            log,
        })
    }

    /// Waits until `ready` succeeds (polled every 200 ms), failing if the process exits or
    /// [`READY_TIMEOUT`] passes first.
    pub async fn wait_ready<F, Fut>(&mut self, mut ready: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("polling the gateway")? {
                anyhow::bail!(
                    "{} exited with {status} before it was ready; its log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            match ready().await {
                Ok(()) => return Ok(()),
                Err(err) if started.elapsed() > READY_TIMEOUT => {
                    anyhow::bail!(
                        "{} not ready after {READY_TIMEOUT:?}: {err:#}; its log:\n{}",
                        self.name,
                        self.log_tail()
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The process's peak resident set size so far, in bytes (`VmHWM`).
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("reading /proc/{}/status", self.pid))?;
        vm_hwm_bytes(&status).context("no VmHWM line in /proc/PID/status")
    }

    /// CPU time the process has used so far (user and system, all threads).
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .with_context(|| format!("reading /proc/{}/stat", self.pid))?;
        let ticks = cpu_ticks(&stat).context("unexpected /proc/PID/stat format")?;
        Ok(Duration::from_secs_f64(
            ticks as f64 / clock_ticks_per_second(),
        ))
    }

    /// The last lines of the process's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the process (SIGKILL: its shutdown is not measured) and reaps it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_none() {
            self.child.kill().await.context("stopping the gateway")?;
        }
        tracing::info!(gateway = self.name, "gateway stopped");
        Ok(())
    }
}

/// `VmHWM:   12345 kB` → bytes.
fn vm_hwm_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `utime + stime` in ticks from the text of `/proc/PID/stat`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    crate::profile::parse_process_stat(stat).map(|(_, ticks)| ticks)
}

/// `USER_HZ`: 100 on every Linux this runs on (`getconf CLK_TCK`).
fn clock_ticks_per_second() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_peak_rss_from_proc_status() {
        let status = "Name:\tx\nVmPeak:\t  99999 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(vm_hwm_bytes(status), Some(2 * 1024 * 1024));
        assert_eq!(vm_hwm_bytes("Name:\tx\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_past_a_command_name_with_spaces() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn measures_this_process() {
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(vm_hwm_bytes(&own).unwrap() > 0);
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_ticks(&stat).is_some());
    }
}
