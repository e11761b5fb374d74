//! The `ipvnet` command: network definitions, the OCI hook, leases and gc.
//! A thin frontend: parse the command line, call the library, print.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use ipvnet::commands;
use ipvnet::network::CreateRequest;
use ipvnet::store::{state_dir, Store};
use ipvnet::Result;

#[derive(Parser)]
#[command(name = "ipvnet", version, about = "ipvlan networks for OCI containers (Docker's ipvlan driver, without Docker)")]
struct Cli {
    /// State directory (default: $IPVNET_STATE_DIR, else /var/lib/ipvnet).
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage networks (the flags of `docker network create -d ipvlan`).
    #[command(subcommand)]
    Network(NetworkCmd),
    /// OCI runtime hook: reads the container state on stdin.
    Hook {
        /// createRuntime (attach) or poststop (release).
        stage: String,
    },
    /// Manage address leases held without a container.
    #[command(subcommand)]
    Lease(LeaseCmd),
    /// Release the leases of containers that no longer exist.
    Gc {
        /// Ask this containerd (its socket, e.g. /run/containerd/containerd.sock)
        /// which containers and sandboxes exist; release the container and pod
        /// records it does not know.
        #[arg(long, value_name = "SOCKET")]
        containerd: Option<PathBuf>,
    },
    /// Run the NRI plugin for Kubernetes pods (containerd, CRI-O).
    Nri(NriArgs),
}

#[derive(Args)]
struct NriArgs {
    /// The runtime's NRI socket (external plugin) [default: /var/run/nri/nri.sock,
    /// or the inherited NRI_PLUGIN_SOCKET fd when the runtime started the plugin].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Plugin name registered with the runtime [default: ipvnet].
    #[arg(long)]
    name: Option<String>,
    /// Plugin index: two digits; plugins are called in ascending order [default: 10].
    #[arg(long)]
    idx: Option<String>,
    /// Log file, or - for stderr (default: stderr under systemd, else /var/log/ipvnet-nri.log).
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Log debug messages too.
    #[arg(long)]
    debug: bool,
}

#[derive(Subcommand)]
enum NetworkCmd {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only network ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show networks as JSON, with their endpoints.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks (they must have no endpoints).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Args)]
struct CreateArgs {
    /// Driver: ipvlan is the only one.
    #[arg(short = 'd', long, default_value = "ipvlan")]
    driver: String,
    /// Subnet in CIDR form; repeat for several (IPv4 and IPv6 mix: dual stack).
    #[arg(long, value_name = "CIDR")]
    subnet: Vec<String>,
    /// Gateway; matched to the subnet that contains it.
    #[arg(long, value_name = "IP")]
    gateway: Vec<String>,
    /// Allocate addresses from this sub-range of a subnet.
    #[arg(long, value_name = "CIDR")]
    ip_range: Vec<String>,
    /// Isolate the network on a dummy parent.
    #[arg(long)]
    internal: bool,
    /// Give the network an IPv4 subnet (from the default pool if none given).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    ipv4: bool,
    /// Accepted for Docker compatibility; an IPv6 --subnet enables IPv6.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    ipv6: Option<bool>,
    /// Driver options: parent=IF, ipvlan_mode=l2|l3|l3s, ipvlan_flag=bridge|private|vepa, mtu=N, k8s_namespaces=a,b|*.
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    name: String,
}

#[derive(Subcommand)]
enum LeaseCmd {
    /// Lease an address per address family of NETWORK; prints them.
    Add {
        network: String,
        #[arg(long)]
        owner: String,
        /// A static address instead of the next free one (repeatable).
        #[arg(long)]
        ip: Vec<IpAddr>,
    },
    /// Release every lease of an owner (no error if it has none).
    Rm {
        #[arg(long)]
        owner: String,
    },
    /// List leases: NETWORK ADDRESS OWNER.
    Ls { network: Option<String> },
}

fn main() -> ExitCode {
    ipvnet::timing::start();
    // containerd starts a pre-registered NRI plugin as /opt/nri/plugins/NN-name
    // with no arguments, the socket on an inherited fd and NRI_PLUGIN_SOCKET.
    if preregistered_nri_launch() {
        return match commands::nri::main(&state_dir(None), &commands::nri::Args::default()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipvnet nri: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // The hook is on every container's start path: `ipvnet hook STAGE`
    // exactly (as hooks.d and config.json snippets call it) skips building
    // the whole command line parser; any other form goes through clap.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == "hook" {
        if let Some(stage) = args[2].to_str().filter(|s| !s.starts_with('-')) {
            return match commands::hook::run(&state_dir(None), stage, std::io::stdin().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ipvnet: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipvnet: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Invoked as `NN-name` (two digits, a dash) with `NRI_PLUGIN_SOCKET` set.
fn preregistered_nri_launch() -> bool {
    if std::env::var_os(nri::ENV_PLUGIN_SOCKET).is_none() {
        return false;
    }
    let Some(argv0) = std::env::args_os().next() else { return false };
    let base = std::path::Path::new(&argv0).file_name().and_then(|b| b.to_str()).unwrap_or("");
    let b = base.as_bytes();
    b.len() > 3 && b[0].is_ascii_digit() && b[1].is_ascii_digit() && b[2] == b'-'
}

fn run(cli: Cli) -> Result<()> {
    let dir = state_dir(cli.state_dir.as_deref());
    match cli.command {
        // The hook opens the store only if it has work to do.
        Command::Hook { stage } => commands::hook::run(&dir, &stage, std::io::stdin().lock()),
        Command::Network(cmd) => {
            let store = Store::open(&dir)?;
            match cmd {
                NetworkCmd::Create(a) => {
                    let req = CreateRequest {
                        name: a.name,
                        driver: a.driver,
                        subnets: a.subnet,
                        gateways: a.gateway,
                        ip_ranges: a.ip_range,
                        internal: a.internal,
                        ipv4: a.ipv4,
                        options: a.opt,
                    };
                    let _ = a.ipv6;
                    let net = commands::network::create(&store, &req)?;
                    println!("{}", net.id);
                }
                NetworkCmd::Ls { quiet } => print!("{}", commands::network::list(&store, quiet)?),
                NetworkCmd::Inspect { names } => {
                    let v = commands::network::inspect(&store, &names)?;
                    println!("{}", serde_json::to_string_pretty(&v).expect("JSON value"));
                }
                NetworkCmd::Rm { names } => {
                    commands::network::remove(&store, &names)?;
                    for n in names {
                        println!("{n}");
                    }
                }
            }
            Ok(())
        }
        Command::Lease(cmd) => {
            let store = Store::open(&dir)?;
            match cmd {
                LeaseCmd::Add { network, owner, ip } => {
                    for a in commands::lease::add(&store, &network, &owner, &ip)? {
                        println!("{a}");
                    }
                }
                LeaseCmd::Rm { owner } => {
                    commands::lease::remove(&store, &owner)?;
                }
                LeaseCmd::Ls { network } => print!("{}", commands::lease::list(&store, network.as_deref())?),
            }
            Ok(())
        }
        Command::Nri(a) => {
            let args = commands::nri::Args { socket: a.socket, name: a.name, idx: a.idx, log_file: a.log_file, debug: a.debug };
            commands::nri::main(&dir, &args)
        }
        Command::Gc { containerd } => {
            let store = Store::open(&dir)?;
            let r = match containerd {
                Some(socket) => commands::gc::run_containerd(&store, &socket)?,
                None => commands::gc::run(&store)?,
            };
            for id in &r.released {
                println!("released {id}");
            }
            eprintln!(
                "gc: released {}, kept {}, orphan leases removed {}, temp files removed {}",
                r.released.len(),
                r.kept,
                r.orphan_leases,
                r.temp_files
            );
            Ok(())
        }
    }
}
