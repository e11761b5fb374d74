//! `ipvnet-runc`: a runc-compatible wrapper. On `create` (and `run`) it adds
//! the ipvnet OCI hooks to the bundle's config.json when the container is
//! annotated with `ipvnet.network`, then execs the real runtime with the same
//! argv, so the pid, inherited fds, console socket and pid file all keep
//! working. Every other subcommand is exec'ed straight away.
//!
//! It never writes to stdout: for some callers stdout is runc's protocol
//! channel. Errors go to stderr and, with `--log FILE`, to that file in
//! runc's own log format, where containerd picks them up.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::annotations;
use crate::error::{Context, Error, Result};

/// The wrapper's config file: `key = value` lines, keys `runtime`, `ipvnet`.
pub const CONFIG_FILE: &str = "/etc/ipvnet/runtime.conf";
/// Where `ipvnet` is looked for last.
pub const DEFAULT_IPVNET: &str = "/usr/local/bin/ipvnet";
/// The real runtime when nothing else is configured.
pub const DEFAULT_RUNTIME: &str = "runc";
/// Environment: the real runtime (name searched in PATH, or a path).
pub const ENV_RUNTIME: &str = "IPVNET_RUNTIME";
/// Environment: the absolute path of the `ipvnet` binary for the hooks.
pub const ENV_IPVNET_BIN: &str = "IPVNET_BIN";
/// Environment: another config file than [`CONFIG_FILE`].
pub const ENV_CONFIG: &str = "IPVNET_RUNTIME_CONF";

/// Global flags of runc (and crun) that take a value. Every other global
/// flag is a boolean (`--debug`, `--systemd-cgroup`, `--help`, `--version`).
const GLOBAL_VALUE_FLAGS: &[&str] = &[
    "root",
    "log",
    "log-format",
    "criu",
    "rootless",
    "cgroup-manager",
];
/// Flags of `create` and `run` that take a value.
const CREATE_VALUE_FLAGS: &[&str] = &["bundle", "b", "console-socket", "pid-file", "preserve-fds"];

/// What the wrapper needs from a runtime command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// The subcommand (`create`, `start`, `delete`, ...), if one was found.
    pub subcommand: Option<String>,
    /// `--bundle` as given to `create`/`run`; `None` means the current dir.
    pub bundle: Option<PathBuf>,
    /// A bundle flag without its value: leave everything to the runtime,
    /// which reports the usage error itself.
    pub malformed: bool,
    /// Global `--log FILE`.
    pub log: Option<PathBuf>,
    /// Global `--log-format` (`text` when absent, as in runc).
    pub log_format: Option<String>,
}

impl Invocation {
    /// Whether this command creates a container from a bundle.
    pub fn creates(&self) -> bool {
        matches!(self.subcommand.as_deref(), Some("create" | "run")) && !self.malformed
    }

    /// The bundle directory as runc finds it: `--bundle`, else the cwd.
    pub fn bundle_dir(&self) -> Result<PathBuf> {
        match &self.bundle {
            Some(b) => Ok(b.clone()),
            None => std::env::current_dir().context("find the current directory (the bundle)"),
        }
    }
}

/// Split `-name`, `--name`, `-name=v`, `--name=v` into name and value;
/// `None` for anything that is not a flag (Go's flag package rules).
fn split_flag(arg: &OsStr) -> Option<(&[u8], Option<&[u8]>)> {
    let b = arg.as_bytes();
    if b.len() < 2 || b[0] != b'-' {
        return None;
    }
    let body = if b[1] == b'-' { &b[2..] } else { &b[1..] };
    if body.is_empty() || body[0] == b'-' || body[0] == b'=' {
        return None;
    }
    Some(match body.iter().position(|&c| c == b'=') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    })
}

fn os(b: &[u8]) -> OsString {
    OsStr::from_bytes(b).to_os_string()
}

/// Parse a runtime command line (`args[0]` is the program) the way runc's
/// CLI does: global flags (skipping their values), then the subcommand, then
/// for `create`/`run` the bundle flag anywhere among the command's arguments
/// up to `--` (runc's CLI library moves flags in front of the container id).
pub fn parse_args(args: &[OsString]) -> Invocation {
    let mut inv = Invocation::default();
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        let Some((name, value)) = split_flag(a) else {
            break;
        };
        let name = String::from_utf8_lossy(name);
        if GLOBAL_VALUE_FLAGS.contains(&name.as_ref()) {
            let v = match value {
                Some(v) => Some(os(v)),
                None => {
                    i += 1;
                    args.get(i).cloned()
                }
            };
            match name.as_ref() {
                "log" => inv.log = v.map(PathBuf::from),
                "log-format" => inv.log_format = v.map(|v| v.to_string_lossy().into_owned()),
                _ => {}
            }
        }
        i += 1;
    }
    let Some(sub) = args.get(i) else { return inv };
    inv.subcommand = Some(sub.to_string_lossy().into_owned());
    if !inv.creates() {
        return inv;
    }

    let mut j = i + 1;
    while j < args.len() {
        let a = &args[j];
        if a == "--" {
            break;
        }
        if let Some((name, value)) = split_flag(a) {
            let takes_value = CREATE_VALUE_FLAGS.iter().any(|f| f.as_bytes() == name);
            if takes_value {
                let v = match value {
                    Some(v) => Some(os(v)),
                    None => {
                        j += 1;
                        args.get(j).cloned()
                    }
                };
                if name == b"bundle" || name == b"b" {
                    match v {
                        Some(v) => inv.bundle = Some(PathBuf::from(v)),
                        None => inv.malformed = true,
                    }
                }
            }
        }
        j += 1;
    }
    // Go's flag package takes `--bundle=` as "no bundle": the current dir.
    if inv
        .bundle
        .as_ref()
        .is_some_and(|b| b.as_os_str().is_empty())
    {
        inv.bundle = None;
    }
    inv
}

/// Contents of the wrapper's config file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileConfig {
    pub runtime: Option<String>,
    pub ipvnet: Option<String>,
}

/// Parse `key = value` lines; `#` starts a comment line; values may be
/// double-quoted. `origin` names the file in messages.
pub fn parse_config_file(text: &str, origin: &str) -> Result<FileConfig> {
    let mut cfg = FileConfig::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{origin}:{}", n + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::new(format!(
                "{at}: expected `key = value`, got {line:?}"
            )));
        };
        let key = key.trim();
        let mut value = value.trim();
        if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            value = &value[1..value.len() - 1];
        }
        if value.is_empty() {
            return Err(Error::new(format!("{at}: {key}: empty value")));
        }
        let slot = match key {
            "runtime" => &mut cfg.runtime,
            "ipvnet" => &mut cfg.ipvnet,
            _ => {
                return Err(Error::new(format!(
                    "{at}: unknown key {key:?} (known: runtime, ipvnet)"
                )))
            }
        };
        if slot.is_some() {
            return Err(Error::new(format!("{at}: {key} is set twice")));
        }
        *slot = Some(value.to_string());
    }
    Ok(cfg)
}

/// Load the config file; a missing file is an empty config.
pub fn load_config_file(path: &Path) -> Result<FileConfig> {
    match fs::read_to_string(path) {
        Ok(text) => parse_config_file(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(Error::from(e).context(format!("read {}", path.display()))),
    }
}

fn file_id(p: &Path) -> Option<(u64, u64)> {
    fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

fn is_executable_file(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Find the real runtime: `requested` is a path (has a `/`) or a name looked
/// up in `path_var`. Whatever is the same file as `self_exe` (the wrapper,
/// through any symlink or hard link) is skipped, so that installing the
/// wrapper as `runc` earlier in PATH cannot make it exec itself forever.
pub fn resolve_runtime(
    requested: &str,
    path_var: Option<&OsStr>,
    self_exe: &Path,
) -> Result<PathBuf> {
    let me = file_id(self_exe);
    let is_me = |p: &Path| me.is_some() && file_id(p) == me;

    if requested.contains('/') {
        let p = PathBuf::from(requested);
        let p = if p.is_relative() {
            std::env::current_dir()?.join(p)
        } else {
            p
        };
        if is_me(&p) {
            return Err(Error::new(format!(
                "runtime {requested:?} is ipvnet-runc itself; set {ENV_RUNTIME} or `runtime =` in \
                 {CONFIG_FILE} to the real runtime"
            )));
        }
        if !is_executable_file(&p) {
            return Err(Error::new(format!(
                "runtime {requested:?}: no executable file there"
            )));
        }
        return Ok(p);
    }

    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut skipped = None;
    for dir in std::env::split_paths(path_var) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let cand = dir.join(requested);
        if !is_executable_file(&cand) {
            continue;
        }
        if is_me(&cand) {
            skipped.get_or_insert(cand);
            continue;
        }
        return Ok(cand);
    }
    let path_s = path_var.to_string_lossy();
    Err(Error::new(match skipped {
        Some(s) => format!(
            "runtime {requested:?}: the only one in PATH ({path_s}) is ipvnet-runc itself ({}); \
             set {ENV_RUNTIME} or `runtime =` in {CONFIG_FILE} to the real runtime",
            s.display()
        ),
        None => format!("runtime {requested:?}: not found in PATH ({path_s})"),
    }))
}

/// Find the `ipvnet` binary the hooks run: `env_value` (IPVNET_BIN), else the
/// config file's `ipvnet`, else `ipvnet` next to the wrapper's executable,
/// else [`DEFAULT_IPVNET`]. It must be an absolute path to an executable.
pub fn resolve_ipvnet(
    env_value: Option<&str>,
    file_value: Option<&str>,
    self_exe: &Path,
) -> Result<PathBuf> {
    let explicit = match (env_value.filter(|v| !v.is_empty()), file_value) {
        (Some(v), _) => Some((v, ENV_IPVNET_BIN.to_string())),
        (None, Some(v)) => Some((v, format!("ipvnet in {CONFIG_FILE}"))),
        (None, None) => None,
    };
    let (path, origin) = match explicit {
        Some((v, origin)) => {
            let p = PathBuf::from(v);
            if !p.is_absolute() {
                return Err(Error::new(format!(
                    "{origin}: {v:?} is not an absolute path"
                )));
            }
            (p, origin)
        }
        None => {
            let beside = fs::read_link(self_exe)
                .ok()
                .or_else(|| Some(self_exe.to_path_buf()))
                .and_then(|exe| exe.parent().map(|d| d.join("ipvnet")));
            match beside.filter(|p| p.is_absolute() && is_executable_file(p)) {
                Some(p) => (p, "next to ipvnet-runc".to_string()),
                None => (PathBuf::from(DEFAULT_IPVNET), "default".to_string()),
            }
        }
    };
    if !is_executable_file(&path) {
        return Err(Error::new(format!(
            "ipvnet binary {} ({origin}): no executable file there; set {ENV_IPVNET_BIN} or \
             `ipvnet =` in {CONFIG_FILE}",
            path.display()
        )));
    }
    Ok(path)
}

/// The two hook entries, as (stage in config.json, verb for `ipvnet hook`).
const STAGES: [(&str, &str); 2] = [("createRuntime", "createRuntime"), ("poststop", "poststop")];

/// Add the ipvnet hooks to a parsed config.json unless entries with the same
/// path and args are there already. Returns whether anything changed.
/// `env` is the hooks' environment; empty means "omit", so the runtime
/// passes its own.
pub fn add_hooks(config: &mut Value, ipvnet: &Path, env: &[String]) -> Result<bool> {
    let path = ipvnet
        .to_str()
        .ok_or_else(|| Error::new(format!("ipvnet binary path {:?} is not UTF-8", ipvnet)))?;
    let obj = config
        .as_object_mut()
        .ok_or_else(|| Error::new("config.json is not a JSON object"))?;
    let hooks = obj.entry("hooks").or_insert(Value::Null);
    if hooks.is_null() {
        *hooks = json!({});
    }
    if !hooks.is_object() {
        return Err(Error::new(format!(
            "config.json: \"hooks\" is not an object: {hooks}"
        )));
    }
    let hooks = hooks.as_object_mut().expect("checked above");

    let mut changed = false;
    for (stage, verb) in STAGES {
        let args = json!(["ipvnet", "hook", verb]);
        let list = hooks.entry(stage).or_insert(Value::Null);
        if list.is_null() {
            *list = json!([]);
        }
        let list = list
            .as_array_mut()
            .ok_or_else(|| Error::new(format!("config.json: \"hooks.{stage}\" is not an array")))?;
        let present = list.iter().any(|h| {
            h.get("path").and_then(Value::as_str) == Some(path) && h.get("args") == Some(&args)
        });
        if present {
            continue;
        }
        let mut entry = json!({ "path": path, "args": args });
        if !env.is_empty() {
            entry["env"] = json!(env);
        }
        list.push(entry);
        changed = true;
    }
    Ok(changed)
}

/// The hooks' environment: the wrapper's `IPVNET_*` settings meant for
/// `ipvnet` (a private state dir in tests, say) plus PATH. Empty when there
/// are none: the runtime then gives the hooks its own environment, which is
/// ours anyway.
pub fn hook_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<String> {
    let wrapper_only = [ENV_RUNTIME, ENV_IPVNET_BIN, ENV_CONFIG];
    let mut ours = BTreeMap::new();
    let mut path = None;
    for (k, v) in vars {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
            continue;
        };
        if k == "PATH" {
            path = Some(v.to_string());
        } else if k.starts_with("IPVNET_") && !wrapper_only.contains(&k) {
            ours.insert(k.to_string(), v.to_string());
        }
    }
    if ours.is_empty() {
        return Vec::new();
    }
    let mut env: Vec<String> = ours.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(p) = path {
        env.push(format!("PATH={p}"));
    }
    env
}

/// Inputs of [`prepare_bundle`] that come from the environment.
pub struct Setup<'a> {
    pub ipvnet_env: Option<&'a str>,
    pub file: &'a FileConfig,
    pub self_exe: &'a Path,
    pub hook_env: &'a [String],
}

/// On `create`: add the hooks to BUNDLE/config.json if it asks for ipvnet.
/// A config.json that cannot be read or parsed is left to the runtime,
/// which reports that better than we could. Returns whether it was written.
pub fn prepare_bundle(bundle: &Path, setup: &Setup) -> Result<bool> {
    let path = bundle.join("config.json");
    let Ok(bytes) = fs::read(&path) else {
        return Ok(false);
    };
    let Ok(mut config) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(false);
    };

    let mut ann = BTreeMap::new();
    if let Some(Value::Object(m)) = config.get("annotations") {
        for (k, v) in m {
            if let Some(s) = v.as_str() {
                ann.insert(k.clone(), s.to_string());
            }
        }
    }
    if !annotations::mentions_ipvnet(&ann) || annotations::is_pod_app_container(&ann) {
        return Ok(false);
    }
    // Refuse a bad request now, with a clear message, rather than in the hook.
    if annotations::parse(&ann)?.is_none() {
        return Ok(false);
    }
    let ipvnet = resolve_ipvnet(
        setup.ipvnet_env,
        setup.file.ipvnet.as_deref(),
        setup.self_exe,
    )?;
    if !add_hooks(&mut config, &ipvnet, setup.hook_env)? {
        return Ok(false);
    }
    let mut out = serde_json::to_vec_pretty(&config)?;
    out.push(b'\n');
    write_atomic(&path, &out).with_context(|| format!("rewrite {}", path.display()))?;
    Ok(true)
}

/// Replace `path` by `data` atomically: temp file in the same directory with
/// the same mode and owner, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let meta = fs::metadata(path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.ipvnet-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mode = meta.permissions().mode() & 0o7777;
    let result = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        // The umask may have narrowed the mode at open.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        // Keep the owner (e.g. a rootless bundle written by root); only root
        // can change it, and for anyone else it is theirs already.
        let _ = std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()));
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .context("fsync the bundle directory")?;
    Ok(())
}

/// One log line in runc's format (logrus): JSON for `--log-format json`,
/// logrus text otherwise.
pub fn log_line(format: Option<&str>, msg: &str, secs: u64) -> String {
    let time = crate::store::rfc3339_utc(secs);
    if format == Some("json") {
        format!(
            "{}\n",
            json!({ "level": "error", "msg": msg, "time": time })
        )
    } else {
        format!("time={time:?} level=error msg={}\n", Value::from(msg))
    }
}

fn report(inv: &Invocation, msg: &str) {
    eprintln!("ipvnet-runc: {msg}");
    if let Some(log) = &inv.log {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let line = log_line(
            inv.log_format.as_deref(),
            &format!("ipvnet-runc: {msg}"),
            secs,
        );
        let _ = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
}

/// execv the runtime with `args[1..]` unchanged; returns only on failure.
fn exec(runtime: &Path, args: &[OsString]) -> Error {
    let to_c = |s: &OsStr| {
        CString::new(s.as_bytes()).map_err(|_| Error::new(format!("{s:?} contains a NUL byte")))
    };
    let prog = match to_c(runtime.as_os_str()) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut argv = vec![prog.clone()];
    for a in args.iter().skip(1) {
        match to_c(a) {
            Ok(c) => argv.push(c),
            Err(e) => return e,
        }
    }
    // Rust ignores SIGPIPE at startup and an ignored signal survives exec;
    // give the runtime the default disposition it would have had.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match nix::unistd::execv(&prog, &argv) {
        Err(e) => Error::from(e).context(format!("exec {}", runtime.display())),
        Ok(never) => match never {},
    }
}

fn run_inner(args: &[OsString], inv: &Invocation) -> Result<Error> {
    let self_exe = PathBuf::from("/proc/self/exe");
    let conf_path = std::env::var_os(ENV_CONFIG)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CONFIG_FILE));
    let file = load_config_file(&conf_path)?;

    let requested = std::env::var(ENV_RUNTIME)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| file.runtime.clone())
        .unwrap_or_else(|| DEFAULT_RUNTIME.to_string());
    let runtime = resolve_runtime(&requested, std::env::var_os("PATH").as_deref(), &self_exe)?;

    if inv.creates() {
        let bundle = inv.bundle_dir()?;
        let ipvnet_env = std::env::var(ENV_IPVNET_BIN).ok();
        let env = hook_env(std::env::vars_os());
        let setup = Setup {
            ipvnet_env: ipvnet_env.as_deref(),
            file: &file,
            self_exe: &self_exe,
            hook_env: &env,
        };
        prepare_bundle(&bundle, &setup).with_context(|| format!("bundle {}", bundle.display()))?;
    }
    Ok(exec(&runtime, args))
}

/// The wrapper's main: returns the exit status only when it could not exec.
pub fn main(args: Vec<OsString>) -> i32 {
    let inv = parse_args(&args);
    let err = match run_inner(&args, &inv) {
        Ok(exec_error) => exec_error,
        Err(e) => e,
    };
    report(&inv, &err.to_string());
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn inv(s: &str) -> Invocation {
        parse_args(&argv(s))
    }

    #[test]
    fn containerd_shim_create() {
        let i = inv(
            "runc --root /run/containerd/runc/k8s.io --log /b/log.json --log-format json \
                     create --bundle /b --pid-file /b/init.pid abc",
        );
        assert_eq!(i.subcommand.as_deref(), Some("create"));
        assert_eq!(i.bundle, Some(PathBuf::from("/b")));
        assert_eq!(i.log, Some(PathBuf::from("/b/log.json")));
        assert_eq!(i.log_format.as_deref(), Some("json"));
        assert!(i.creates());
    }

    #[test]
    fn every_bundle_flag_form() {
        for form in [
            "--bundle /b",
            "--bundle=/b",
            "-bundle /b",
            "-bundle=/b",
            "-b /b",
            "-b=/b",
            "--b /b",
            "--b=/b",
        ] {
            let i = inv(&format!("runc create {form} id"));
            assert_eq!(i.bundle, Some(PathBuf::from("/b")), "{form}");
            // After the container id too: runc's CLI reorders flags first.
            let i = inv(&format!("runc create --pid-file p id {form}"));
            assert_eq!(i.bundle, Some(PathBuf::from("/b")), "{form} after id");
        }
        // The last one wins, as with Go's flag package.
        assert_eq!(
            inv("runc create -b /x --bundle /y id").bundle,
            Some(PathBuf::from("/y"))
        );
        assert_eq!(
            inv("runc create --bundle=rel/dir id").bundle,
            Some(PathBuf::from("rel/dir"))
        );
    }

    #[test]
    fn absent_bundle_is_cwd() {
        let i = inv("runc create id");
        assert_eq!(i.bundle, None);
        assert_eq!(i.bundle_dir().unwrap(), std::env::current_dir().unwrap());
        assert_eq!(inv("runc create --bundle= id").bundle, None);
    }

    #[test]
    fn bundle_flag_values_are_not_flags() {
        // `--pid-file -b` takes "-b" as the pid file; the bundle stays absent.
        let i = inv("runc create --pid-file -b id");
        assert_eq!(i.bundle, None);
        assert_eq!(
            inv("runc create --console-socket /s -b /b id").bundle,
            Some(PathBuf::from("/b"))
        );
        // After `--` nothing is a flag.
        assert_eq!(inv("runc create id -- -b /b").bundle, None);
        // A bundle flag with no value: left to runc to complain about.
        let i = inv("runc create id --bundle");
        assert!(i.malformed && !i.creates());
    }

    #[test]
    fn create_after_global_flags() {
        for pre in [
            "--root /r",
            "--root=/r",
            "-root /r",
            "--log /l",
            "--log-format json",
            "--log-format=text",
            "--systemd-cgroup",
            "--debug",
            "--debug=true",
            "--rootless auto",
            "--criu /c",
            "--root /r --debug --log /l --systemd-cgroup --rootless=false",
        ] {
            let i = inv(&format!("runc {pre} create -b /b id"));
            assert_eq!(i.subcommand.as_deref(), Some("create"), "{pre}");
            assert_eq!(i.bundle, Some(PathBuf::from("/b")), "{pre}");
        }
    }

    #[test]
    fn create_as_a_flag_value_is_not_the_subcommand() {
        let i = inv("runc --root create start create");
        assert_eq!(i.subcommand.as_deref(), Some("start"));
        assert!(!i.creates());
        let i = inv("runc --log create --log-format create delete --force create");
        assert_eq!(i.subcommand.as_deref(), Some("delete"));
        assert_eq!(i.log, Some(PathBuf::from("create")));
        // `--bundle create` inside create is the bundle, not a second subcommand.
        let i = inv("runc create --bundle create id");
        assert_eq!(i.bundle, Some(PathBuf::from("create")));
    }

    #[test]
    fn other_subcommands_and_oddities() {
        assert_eq!(inv("runc start id").subcommand.as_deref(), Some("start"));
        assert!(!inv("runc delete --force id").creates());
        assert!(!inv("runc exec -b x id").creates());
        assert_eq!(inv("runc").subcommand, None);
        assert_eq!(inv("runc --version").subcommand, None);
        assert_eq!(inv("runc --root /r").subcommand, None);
        assert_eq!(
            inv("runc -- create id").subcommand.as_deref(),
            Some("create")
        );
        let i = inv("runc run -d -b /b id");
        assert!(i.creates());
        assert_eq!(i.bundle, Some(PathBuf::from("/b")));
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ipvnet-rw-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn write_exe(p: &Path) {
        fs::write(p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn config_file_parsing() {
        let c = parse_config_file(
            "# comment\n\n runtime = crun \nipvnet=\"/opt/ipvnet/bin/ipvnet\"\n",
            "f",
        )
        .unwrap();
        assert_eq!(c.runtime.as_deref(), Some("crun"));
        assert_eq!(c.ipvnet.as_deref(), Some("/opt/ipvnet/bin/ipvnet"));
        assert_eq!(
            parse_config_file("runtime crun\n", "f")
                .unwrap_err()
                .to_string(),
            "f:1: expected `key = value`, got \"runtime crun\""
        );
        assert_eq!(
            parse_config_file("\nruntim = crun\n", "f")
                .unwrap_err()
                .to_string(),
            "f:2: unknown key \"runtim\" (known: runtime, ipvnet)"
        );
        assert_eq!(
            parse_config_file("runtime =\n", "f")
                .unwrap_err()
                .to_string(),
            "f:1: runtime: empty value"
        );
        assert_eq!(
            parse_config_file("runtime=a\nruntime=b\n", "f")
                .unwrap_err()
                .to_string(),
            "f:2: runtime is set twice"
        );
        assert_eq!(
            load_config_file(Path::new("/nonexistent/runtime.conf")).unwrap(),
            FileConfig::default()
        );
    }

    #[test]
    fn runtime_resolution_skips_the_wrapper() {
        let d = tmpdir("resolve");
        let (a, b) = (d.join("a"), d.join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        let me = d.join("ipvnet-runc");
        write_exe(&me);
        std::os::unix::fs::symlink(&me, a.join("runc")).unwrap();
        write_exe(&b.join("runc"));
        fs::write(d.join("a/notexec"), "").unwrap();

        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(
            resolve_runtime("runc", Some(&path), &me).unwrap(),
            b.join("runc")
        );

        let only_me = std::env::join_paths([&a]).unwrap();
        let e = resolve_runtime("runc", Some(&only_me), &me)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is ipvnet-runc itself"), "{e}");

        // A hard link is the same file too.
        fs::hard_link(&me, d.join("hard")).unwrap();
        let e = resolve_runtime(d.join("hard").to_str().unwrap(), None, &me)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is ipvnet-runc itself"), "{e}");

        assert_eq!(
            resolve_runtime(b.join("runc").to_str().unwrap(), None, &me).unwrap(),
            b.join("runc")
        );
        let e = resolve_runtime("notexec", Some(&path), &me)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("runtime \"notexec\": not found in PATH"),
            "{e}"
        );
        let e = resolve_runtime("/nonexistent/runc", None, &me)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "runtime \"/nonexistent/runc\": no executable file there");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn ipvnet_resolution() {
        let d = tmpdir("ipvnetbin");
        let me = d.join("ipvnet-runc");
        write_exe(&me);
        let other = d.join("other");
        write_exe(&other);
        let o = other.to_str().unwrap();
        assert_eq!(resolve_ipvnet(Some(o), Some("/x"), &me).unwrap(), other);
        assert_eq!(resolve_ipvnet(None, Some(o), &me).unwrap(), other);
        assert_eq!(
            resolve_ipvnet(Some("bin/ipvnet"), None, &me)
                .unwrap_err()
                .to_string(),
            "IPVNET_BIN: \"bin/ipvnet\" is not an absolute path"
        );
        assert!(resolve_ipvnet(None, Some("ipvnet"), &me)
            .unwrap_err()
            .to_string()
            .starts_with("ipvnet in /etc/ipvnet/runtime.conf: \"ipvnet\" is not an absolute path"));
        let e = resolve_ipvnet(Some("/nonexistent/ipvnet"), None, &me)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "ipvnet binary /nonexistent/ipvnet (IPVNET_BIN): no executable file there"
            ),
            "{e}"
        );
        // Next to the wrapper.
        write_exe(&d.join("ipvnet"));
        assert_eq!(resolve_ipvnet(None, None, &me).unwrap(), d.join("ipvnet"));
        fs::remove_dir_all(&d).unwrap();
    }

    const CONFIG: &str = r#"{
  "ociVersion": "1.0.2-dev",
  "process": {"terminal": false, "args": ["sh"], "cwd": "/", "futureProcessField": {"x": 1}},
  "root": {"path": "rootfs", "readonly": true},
  "annotations": {"ipvnet.network": "db_net", "other": "v"},
  "hooks": {"createRuntime": [{"path": "/usr/bin/other-hook", "args": ["other-hook"]}]},
  "linux": {"namespaces": [{"type": "network"}], "unknownLinuxThing": [1, 2.5, null]},
  "vendorExtension": {"deep": {"list": [true, "s"]}}
}"#;

    #[test]
    fn add_hooks_preserves_and_is_idempotent() {
        let ipvnet = Path::new("/usr/local/bin/ipvnet");
        let mut v: Value = serde_json::from_str(CONFIG).unwrap();
        let orig = v.clone();
        assert!(add_hooks(&mut v, ipvnet, &["IPVNET_STATE_DIR=/s".to_string()]).unwrap());

        let cr = v["hooks"]["createRuntime"].as_array().unwrap();
        assert_eq!(cr.len(), 2);
        assert_eq!(cr[0], orig["hooks"]["createRuntime"][0]);
        assert_eq!(
            cr[1],
            json!({"path": "/usr/local/bin/ipvnet", "args": ["ipvnet", "hook", "createRuntime"],
                   "env": ["IPVNET_STATE_DIR=/s"]})
        );
        assert_eq!(
            v["hooks"]["poststop"],
            json!([{"path": "/usr/local/bin/ipvnet", "args": ["ipvnet", "hook", "poststop"],
                    "env": ["IPVNET_STATE_DIR=/s"]}])
        );
        // Everything else untouched, unknown fields included.
        for key in [
            "ociVersion",
            "process",
            "root",
            "annotations",
            "linux",
            "vendorExtension",
        ] {
            assert_eq!(v[key], orig[key], "{key}");
        }
        let once = v.clone();
        assert!(!add_hooks(&mut v, ipvnet, &[]).unwrap());
        assert_eq!(v, once);

        // No env given: no env key (the runtime passes its own).
        let mut v = json!({"hooks": null});
        assert!(add_hooks(&mut v, ipvnet, &[]).unwrap());
        assert!(v["hooks"]["poststop"][0].get("env").is_none());

        let mut bad = json!({"hooks": {"poststop": {}}});
        assert_eq!(
            add_hooks(&mut bad, ipvnet, &[]).unwrap_err().to_string(),
            "config.json: \"hooks.poststop\" is not an array"
        );
    }

    #[test]
    fn hook_env_selection() {
        let vars = |p: &[(&str, &str)]| -> Vec<(OsString, OsString)> {
            p.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect()
        };
        assert!(hook_env(vars(&[
            ("PATH", "/bin"),
            ("IPVNET_RUNTIME", "runc"),
            ("HOME", "/")
        ]))
        .is_empty());
        assert_eq!(
            hook_env(vars(&[
                ("PATH", "/bin"),
                ("IPVNET_STATE_DIR", "/s"),
                ("IPVNET_BIN", "/x")
            ])),
            vec!["IPVNET_STATE_DIR=/s", "PATH=/bin"]
        );
    }

    fn setup_with<'a>(file: &'a FileConfig, me: &'a Path, ipvnet: &'a str) -> Setup<'a> {
        Setup {
            ipvnet_env: Some(ipvnet),
            file,
            self_exe: me,
            hook_env: &[],
        }
    }

    #[test]
    fn prepare_bundle_rewrites_once_keeping_mode() {
        let d = tmpdir("prepare");
        let bin = d.join("ipvnet");
        write_exe(&bin);
        let cfg = d.join("config.json");
        fs::write(&cfg, CONFIG).unwrap();
        fs::set_permissions(&cfg, fs::Permissions::from_mode(0o640)).unwrap();
        let file = FileConfig::default();
        let setup = setup_with(&file, Path::new("/proc/self/exe"), bin.to_str().unwrap());

        assert!(prepare_bundle(&d, &setup).unwrap());
        let first = fs::read(&cfg).unwrap();
        assert_eq!(
            fs::metadata(&cfg).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        let v: Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(v["hooks"]["createRuntime"].as_array().unwrap().len(), 2);
        assert_eq!(v["vendorExtension"], json!({"deep": {"list": [true, "s"]}}));
        // Second run: nothing to add, file not rewritten.
        assert!(!prepare_bundle(&d, &setup).unwrap());
        assert_eq!(fs::read(&cfg).unwrap(), first);
        // No temp file left behind.
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn prepare_bundle_leaves_unannotated_config_alone() {
        let d = tmpdir("noann");
        let cfg = d.join("config.json");
        // Odd formatting that any rewrite would change.
        let text = "{\"ociVersion\":\"1.0.2\",  \"annotations\":{\"x\":\"y\"},\n\"z\":1.50}";
        fs::write(&cfg, text).unwrap();
        let file = FileConfig::default();
        let setup = setup_with(&file, Path::new("/proc/self/exe"), "/nonexistent");
        assert!(!prepare_bundle(&d, &setup).unwrap());
        assert_eq!(fs::read_to_string(&cfg).unwrap(), text);
        // Garbage and missing config.json are left to the runtime.
        fs::write(&cfg, "{garbage").unwrap();
        assert!(!prepare_bundle(&d, &setup).unwrap());
        assert!(!prepare_bundle(&d.join("missing"), &setup).unwrap());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn prepare_bundle_skips_pod_app_containers() {
        let d = tmpdir("podapp");
        let bin = d.join("ipvnet");
        write_exe(&bin);
        let file = FileConfig::default();
        let setup = setup_with(&file, Path::new("/proc/self/exe"), bin.to_str().unwrap());
        let cfg = d.join("config.json");
        for (kind, added) in [("container", false), ("sandbox", true)] {
            for key in [
                "io.kubernetes.cri.container-type",
                "io.kubernetes.cri-o.ContainerType",
            ] {
                let text = json!({"annotations": {"ipvnet.network": "db", key: kind}}).to_string();
                fs::write(&cfg, &text).unwrap();
                assert_eq!(prepare_bundle(&d, &setup).unwrap(), added, "{key}={kind}");
                if !added {
                    assert_eq!(fs::read_to_string(&cfg).unwrap(), text);
                }
            }
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn prepare_bundle_refuses_bad_annotations() {
        let d = tmpdir("badann");
        let cfg = d.join("config.json");
        let text = r#"{"annotations":{"ipvnet.network":"db","ipvnet.ip":"10.0.0.300"}}"#;
        fs::write(&cfg, text).unwrap();
        let file = FileConfig::default();
        let setup = setup_with(&file, Path::new("/proc/self/exe"), "/nonexistent");
        assert_eq!(
            prepare_bundle(&d, &setup).unwrap_err().to_string(),
            r#"annotation ipvnet.ip: "10.0.0.300" is not an IPv4 address"#
        );
        assert_eq!(fs::read_to_string(&cfg).unwrap(), text);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn times_and_log_lines() {
        assert_eq!(crate::store::rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(crate::store::rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(crate::store::rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(crate::store::rfc3339_utc(4_107_542_399), "2100-02-28T23:59:59Z");
        let j: Value =
            serde_json::from_str(log_line(Some("json"), "bad \"x\"", 0).trim_end()).unwrap();
        assert_eq!(
            j,
            json!({"level": "error", "msg": "bad \"x\"", "time": "1970-01-01T00:00:00Z"})
        );
        assert_eq!(
            log_line(None, "bad \"x\"", 0),
            "time=\"1970-01-01T00:00:00Z\" level=error msg=\"bad \\\"x\\\"\"\n"
        );
    }
}
