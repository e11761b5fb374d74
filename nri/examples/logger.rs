//! An example NRI plugin that appends one line per pod event to a file.
//!
//! External:       logger [--socket /var/run/nri/nri.sock] [--idx 90] [--file /tmp/nri-logger.log]
//! Pre-registered: install as /opt/nri/plugins/90-logger; containerd starts
//!                 it with the socket on an inherited fd (no arguments, no
//!                 PATH). The file defaults to /tmp/nri-logger.log, or the
//!                 plugin configuration's `file=PATH` line.
//!
//! The library's own log messages go to stderr at `info` level (set
//! NRI_LOGGER_DEBUG=1 for `debug`); nothing is written to stdout.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use nri::api::{Container, PodSandbox};
use nri::{BoxError, Config, EventMask, Options, Plugin};

struct Logger {
    file: Mutex<PathBuf>,
}

impl Logger {
    fn line(&self, text: &str) -> Result<(), BoxError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let path = self.file.lock().unwrap().clone();
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        writeln!(f, "{now} {text}")?;
        Ok(())
    }

    fn pod_line(&self, what: &str, pod: &PodSandbox) -> Result<(), BoxError> {
        let netns = nri::pod_namespace(pod, "network").unwrap_or("-");
        self.line(&format!(
            "{what} pod={}/{} id={} netns={netns} ips={}",
            pod.namespace,
            pod.name,
            pod.id,
            pod.ips.join(",")
        ))
    }
}

impl Plugin for Logger {
    fn configure(&self, config: &Config) -> Result<EventMask, BoxError> {
        for line in config.config.lines() {
            if let Some(path) = line.trim().strip_prefix("file=") {
                *self.file.lock().unwrap() = PathBuf::from(path);
            }
        }
        self.line(&format!(
            "configured by {} {}",
            config.runtime_name, config.runtime_version
        ))?;
        Ok(EventMask::POD_EVENTS.with(nri::api::Event::CREATE_CONTAINER))
    }

    fn synchronize(
        &self,
        pods: &[PodSandbox],
        containers: &[Container],
    ) -> Result<Vec<nri::api::ContainerUpdate>, BoxError> {
        self.line(&format!(
            "synchronized: {} pods, {} containers",
            pods.len(),
            containers.len()
        ))?;
        Ok(Vec::new())
    }

    fn run_pod_sandbox(&self, pod: &PodSandbox) -> Result<(), BoxError> {
        self.pod_line("RunPodSandbox", pod)
    }

    fn stop_pod_sandbox(&self, pod: &PodSandbox) -> Result<(), BoxError> {
        self.pod_line("StopPodSandbox", pod)
    }

    fn remove_pod_sandbox(&self, pod: &PodSandbox) -> Result<(), BoxError> {
        self.pod_line("RemovePodSandbox", pod)
    }

    fn create_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<nri::api::ContainerAdjustment, BoxError> {
        self.line(&format!(
            "CreateContainer pod={}/{} container={} id={}",
            pod.namespace, pod.name, container.name, container.id
        ))?;
        Ok(nri::api::ContainerAdjustment::new())
    }

    fn shutdown(&self) {
        let _ = self.line("shutdown");
    }
}

/// Minimal stderr logger for the `log` facade.
struct Stderr;

static STDERR: Stderr = Stderr;

impl log::Log for Stderr {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("nri-logger {}: {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

fn main() {
    let level = if std::env::var_os("NRI_LOGGER_DEBUG").is_some() {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    log::set_logger(&STDERR).expect("logger set once");
    log::set_max_level(level);

    let mut file = PathBuf::from("/tmp/nri-logger.log");
    let opts = match Options::from_env() {
        Some(opts) => opts,
        None => {
            let mut opts = Options::new("logger", "90");
            let mut args = std::env::args().skip(1);
            while let Some(a) = args.next() {
                let mut val = || args.next().unwrap_or_else(|| usage(&a));
                match a.as_str() {
                    "--socket" => opts.socket_path = PathBuf::from(val()),
                    "--idx" => opts.idx = val(),
                    "--name" => opts.name = val(),
                    "--file" => file = PathBuf::from(val()),
                    _ => usage(&a),
                }
            }
            opts
        }
    };
    let plugin = Logger {
        file: Mutex::new(file),
    };
    if let Err(e) = nri::run(plugin, opts) {
        eprintln!("nri-logger: {e}");
        std::process::exit(1);
    }
}

fn usage(arg: &str) -> ! {
    eprintln!("nri-logger: bad argument {arg:?}");
    eprintln!("usage: logger [--socket PATH] [--name NAME] [--idx NN] [--file PATH]");
    std::process::exit(2);
}
