//! The state directory: network definitions, endpoint records and the
//! address leases, shared by every ipvnet process on the host.
//!
//! ```text
//! STATE/lock                          flock(2): one writer at a time
//! STATE/networks/NAME.json            network definitions
//! STATE/endpoints/OWNER.json          what an owner (container, pod) holds
//! STATE/ipam/NAME/leases/ADDRESS      one file per leased address: the owner id
//! STATE/ipam/NAME/SUBNET.bitmap       free-slot hint for fast allocation
//! STATE/hosts/NAME                    name resolution: address and names
//! ```
//!
//! Crash safety comes from the order of writes, all under the lock:
//! reserve writes the endpoint record (temp file, fsync, rename) before it
//! creates the lease files (complete, by link(2)), and release removes the lease files
//! before the record. So every lease file belongs to a recorded owner, a
//! SIGKILL at any instant leaves nothing that `release`/`gc` cannot undo,
//! and a lease is only ever removed by the owner written in it.
//! The bitmap is a hint kept with one invariant (a bit is set only while
//! its lease file exists) and is rebuilt from the lease files if damaged.
//!
//! The lock is held only for file work (a few hundred microseconds), never
//! across netlink calls.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::ipam::{check_static, Bitmap, Pool, Words};
use crate::network::{Network, Subnet};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/ipvnet";
pub const STATE_DIR_ENV: &str = "IPVNET_STATE_DIR";

/// The state directory from `--state-dir`, else `IPVNET_STATE_DIR`, else the default.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(STATE_DIR_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// What kind of thing owns leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnerKind {
    /// An OCI container attached by the hook.
    Container,
    /// A Kubernetes pod attached by the NRI plugin.
    Pod,
    /// Addresses taken with `ipvnet lease add`.
    Lease,
}

/// One interface of an owner, on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    pub addresses: Vec<IpNetwork>,
}

/// `STATE/endpoints/OWNER.json`: everything an owner holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub id: String,
    pub kind: OwnerKind,
    /// The name other containers resolve it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Where its network namespace was (for the NRI plugin, whose stop
    /// events carry no path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    /// Extra facts for gc (pid and its start time, runtime state dir, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub endpoints: Vec<Endpoint>,
    pub created: String,
}

impl Owner {
    /// A record holding nothing yet, made now.
    pub fn new(id: &str, kind: OwnerKind) -> Owner {
        Owner {
            id: id.to_string(),
            kind,
            hostname: None,
            netns: None,
            labels: BTreeMap::new(),
            endpoints: Vec::new(),
            created: now_rfc3339(),
        }
    }
}

/// One network an owner wants an interface on.
#[derive(Debug, Clone)]
pub struct Want<'a> {
    pub network: &'a Network,
    pub interface: String,
    /// Static addresses (Docker's `--ip`/`--ip6`); each must be in a subnet
    /// of this network. A family without one gets a dynamic address.
    pub statics: Vec<IpAddr>,
}

/// Check an owner id: it becomes a file name.
pub fn check_owner_id(id: &str) -> Result<()> {
    let mut chars = id.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '+'))
        && id.len() <= 128;
    if !ok {
        return Err(Error::new(format!(
            "invalid container id {id:?}: use letters, digits, '_', '.', '+' and '-', at most 128 characters"
        )));
    }
    Ok(())
}

pub struct Store {
    dir: PathBuf,
}

/// An address chosen for an owner, not yet written.
struct Pick<'n> {
    network: &'n Network,
    pool: Pool,
    /// Its slot in the pool's bitmap, if it has one.
    slot: Option<u64>,
    ip: IpAddr,
}

/// The store with its lock held; every change goes through here.
pub struct Locked<'a> {
    store: &'a Store,
    _lock: File,
}

impl Store {
    /// Open (and create if needed) a state directory.
    pub fn open(dir: &Path) -> Result<Store> {
        for sub in ["networks", "endpoints", "ipam", "hosts"] {
            let p = dir.join(sub);
            if !p.is_dir() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(&p)
                    .with_context(|| format!("create state directory {}", p.display()))?;
            }
        }
        Ok(Store { dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the store's exclusive lock (blocks until free).
    pub fn lock(&self) -> Result<Locked<'_>> {
        let path = self.dir.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("open lock {}", path.display()))?;
        loop {
            // SAFETY: flock on an fd we own.
            let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(Error::from(e).context(format!("lock {}", path.display())));
            }
        }
        Ok(Locked { store: self, _lock: f })
    }

    fn network_path(&self, name: &str) -> PathBuf {
        self.dir.join("networks").join(format!("{name}.json"))
    }

    fn owner_path(&self, id: &str) -> PathBuf {
        self.dir.join("endpoints").join(format!("{id}.json"))
    }

    fn ipam_dir(&self, network: &str) -> PathBuf {
        self.dir.join("ipam").join(network)
    }

    fn lease_path(&self, network: &str, ip: IpAddr) -> PathBuf {
        self.ipam_dir(network).join("leases").join(ip.to_string())
    }

    pub fn hosts_path(&self, network: &str) -> PathBuf {
        self.dir.join("hosts").join(network)
    }

    /// Every network, sorted by name. Readers need no lock: files are
    /// replaced atomically.
    pub fn networks(&self) -> Result<Vec<Network>> {
        let mut out = Vec::new();
        for name in list_dir(&self.dir.join("networks"), ".json")? {
            out.push(self.network(&name)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn network(&self, name: &str) -> Result<Network> {
        crate::network::check_name(name)?;
        match read_json(&self.network_path(name))? {
            Some(n) => Ok(n),
            None => Err(Error::new(format!("network {name:?} not found"))),
        }
    }

    /// A network by name, or by (a prefix of at least 6 characters of) its id.
    pub fn find_network(&self, name_or_id: &str) -> Result<Network> {
        if crate::network::check_name(name_or_id).is_ok() && self.network_path(name_or_id).exists() {
            return self.network(name_or_id);
        }
        if name_or_id.len() >= 6 {
            let hits: Vec<Network> =
                self.networks()?.into_iter().filter(|n| n.id.starts_with(name_or_id)).collect();
            if hits.len() == 1 {
                return Ok(hits.into_iter().next().unwrap());
            }
        }
        self.network(name_or_id)
    }

    pub fn owner(&self, id: &str) -> Result<Option<Owner>> {
        check_owner_id(id)?;
        self.read_owner(id)
    }

    /// Read `endpoints/ID.json`. A record that names another owner, or a
    /// network that cannot be one, is damaged: acting on it would release
    /// or touch what another owner holds.
    fn read_owner(&self, id: &str) -> Result<Option<Owner>> {
        let path = self.owner_path(id);
        let Some(owner) = read_json::<Owner>(&path)? else { return Ok(None) };
        let why = if owner.id != id {
            Some(format!("it is the record of {:?}", owner.id))
        } else {
            owner
                .endpoints
                .iter()
                .find(|ep| crate::network::check_name(&ep.network).is_err())
                .map(|ep| format!("it names network {:?}", ep.network))
        };
        match why {
            Some(why) => Err(Error::new(format!("{} is damaged ({why}); move it away or restore it", path.display()))),
            None => Ok(Some(owner)),
        }
    }

    /// Every endpoint record (for gc, inspect and ls).
    pub fn owners(&self) -> Result<Vec<Owner>> {
        let mut out = Vec::new();
        for id in list_dir(&self.dir.join("endpoints"), ".json")? {
            if let Some(o) = self.read_owner(&id)? {
                out.push(o);
            }
        }
        Ok(out)
    }

    /// Every lease of a network: address and owner id.
    pub fn leases(&self, network: &str) -> Result<Vec<(IpAddr, String)>> {
        let dir = self.ipam_dir(network).join("leases");
        let mut out = Vec::new();
        for name in list_dir(&dir, "")? {
            let Ok(ip) = name.parse::<IpAddr>() else { continue };
            let owner = fs::read_to_string(dir.join(&name)).unwrap_or_default();
            out.push((ip, owner.trim().to_string()));
        }
        out.sort();
        Ok(out)
    }
}

impl Locked<'_> {
    pub fn store(&self) -> &Store {
        self.store
    }

    pub fn save_network(&self, n: &Network) -> Result<()> {
        write_json_atomic(&self.store.network_path(&n.name), n)
    }

    /// Create the network's hosts file (bind-mounted into containers at
    /// /etc/hosts) so that it exists before any container's mounts are made.
    pub fn init_hosts(&self, network: &str) -> Result<()> {
        let path = self.store.hosts_path(network);
        if !path.exists() {
            write_atomic(&path, HOSTS_HEADER.as_bytes(), false)?;
        }
        Ok(())
    }

    /// Remove a network's definition and its address store.
    pub fn remove_network(&self, name: &str) -> Result<()> {
        let ipam = self.store.ipam_dir(name);
        if ipam.exists() {
            fs::remove_dir_all(&ipam).with_context(|| format!("remove {}", ipam.display()))?;
        }
        remove_if_exists(&self.store.hosts_path(name))?;
        remove_if_exists(&self.store.network_path(name))
    }

    /// Whether any address of the network is leased. O(1): one directory entry.
    pub fn has_leases(&self, network: &str) -> Result<bool> {
        // The listing leases() uses: a killed writer's temp file is no lease.
        Ok(!list_dir(&self.store.ipam_dir(network).join("leases"), "")?.is_empty())
    }

    /// Take addresses on every wanted network and record the owner: all or
    /// nothing. Fails if the owner already has a record.
    pub fn reserve(&self, mut owner: Owner, wants: &[Want]) -> Result<Owner> {
        check_owner_id(&owner.id)?;
        if self.store.owner_path(&owner.id).exists() {
            return Err(Error::new(format!("{} is already attached (record {} exists)", owner.id, self.store.owner_path(&owner.id).display())));
        }
        // Choose every address first; nothing is written until all are found.
        let mut picks: Vec<Pick> = Vec::new();
        owner.endpoints.clear();
        for want in wants {
            let net = want.network;
            let mut addresses = Vec::new();
            for s in &want.statics {
                if !net.subnets.iter().any(|sub| sub.subnet.contains(*s)) {
                    return Err(Error::new(format!("address {s} is in no subnet of network {:?}", net.name)));
                }
            }
            for v6 in [false, true] {
                if !net.has_family(v6) {
                    continue;
                }
                let statics: Vec<IpAddr> = want.statics.iter().copied().filter(|s| s.is_ipv6() == v6).collect();
                if statics.len() > 1 {
                    return Err(Error::new(format!(
                        "more than one static IPv{} address for network {:?}: {statics:?}",
                        if v6 { 6 } else { 4 },
                        net.name
                    )));
                }
                let pick = match statics.first() {
                    Some(&ip) => self.pick_static(net, ip)?,
                    None => self.pick_dynamic(net, v6)?,
                };
                addresses.push(pick.pool.with_prefix(pick.ip));
                picks.push(pick);
            }
            owner.endpoints.push(Endpoint { network: net.name.clone(), interface: want.interface.clone(), addresses });
        }

        // Commit: the record first, then the lease files, then the hints.
        write_json_atomic(&self.store.owner_path(&owner.id), &owner)?;
        let mut created = Vec::new();
        for pick in &picks {
            let path = self.store.lease_path(&pick.network.name, pick.ip);
            if let Err(e) = create_lease(&path, &owner.id) {
                for p in &created {
                    let _ = fs::remove_file(p);
                }
                let _ = fs::remove_file(self.store.owner_path(&owner.id));
                return Err(e);
            }
            created.push(path);
        }
        let hints = picks.iter().try_for_each(|pick| match pick.slot {
            Some(slot) => {
                let mut bm = self.bitmap(pick.network, &pick.pool, false)?;
                bm.bitmap.mark(&mut bm.words, slot, true)?;
                bm.bitmap.advance(&mut bm.words, slot)
            }
            None => Ok(()),
        });
        if let Err(e) = hints.and_then(|()| self.update_hosts(&owner, true)) {
            let _ = self.release(&owner.id);
            return Err(e);
        }
        Ok(owner)
    }

    fn pick_static<'n>(&self, net: &'n Network, ip: IpAddr) -> Result<Pick<'n>> {
        let sub = net
            .subnets
            .iter()
            .find(|s| s.subnet.contains(ip))
            .ok_or_else(|| Error::new(format!("address {ip} is in no subnet of network {:?}", net.name)))?;
        check_static(sub, ip).map_err(|e| e.context(format!("network {:?}", net.name)))?;
        let path = self.store.lease_path(&net.name, ip);
        if let Some(holder) = read_lease(&path)? {
            return Err(Error::new(format!("address {ip} on network {:?} is in use by {holder}", net.name)));
        }
        let pool = Pool::new(sub);
        // A static address outside the --ip-range has no slot in the bitmap.
        Ok(Pick { network: net, slot: pool.slot_of(ip), pool, ip })
    }

    fn pick_dynamic<'n>(&self, net: &'n Network, v6: bool) -> Result<Pick<'n>> {
        // A damaged bitmap may claim "full". Believing it while another
        // subnet has room is harmless, so the bitmaps are rebuilt from the
        // lease files only before refusing: a full first subnet of a
        // multi-subnet network costs nothing on the common path.
        for rebuild in [false, true] {
            for sub in net.subnets.iter().filter(|s| s.subnet.is_ipv6() == v6) {
                if let Some(pick) = self.pick_in_subnet(net, sub, rebuild)? {
                    return Ok(pick);
                }
            }
        }
        Err(Error::new(format!("no free address in {} (IPv{})", net.name, if v6 { 6 } else { 4 })))
    }

    /// The next free address of one subnet, or `None` when it is full.
    fn pick_in_subnet<'n>(&self, net: &'n Network, sub: &Subnet, rebuild: bool) -> Result<Option<Pick<'n>>> {
        let pool = Pool::new(sub);
        let reserved: Vec<u64> = pool.reserved().collect();
        let mut bm = self.bitmap(net, &pool, rebuild)?;
        let mut rebuilt = rebuild;
        loop {
            match bm.bitmap.find_free(&mut bm.words)? {
                Some(slot) if slot < pool.slots() && !reserved.contains(&slot) => {
                    let ip = pool.addr(slot);
                    if !self.store.lease_path(&net.name, ip).exists() {
                        return Ok(Some(Pick { network: net, slot: Some(slot), pool, ip }));
                    }
                    // A stale hint (killed between the lease and its bit): heal it.
                    bm.bitmap.mark(&mut bm.words, slot, true)?;
                }
                // A free bit on a reserved or padding slot: the hint is
                // damaged; rebuild it from the lease files (once).
                Some(_) if !rebuilt => {
                    bm = self.bitmap(net, &pool, true)?;
                    rebuilt = true;
                }
                Some(_) | None => return Ok(None),
            }
        }
    }

    /// Give back every lease and the record of an owner. Idempotent: an
    /// unknown owner is not an error. Returns the record that was removed.
    pub fn release(&self, id: &str) -> Result<Option<Owner>> {
        check_owner_id(id)?;
        let Some(owner) = self.store.read_owner(id)? else { return Ok(None) };
        let mut errors = Vec::new();
        for ep in &owner.endpoints {
            let net = self.store.network(&ep.network).ok();
            for addr in &ep.addresses {
                let path = self.store.lease_path(&ep.network, addr.ip());
                // Only the owner written in the lease may remove it.
                match read_lease(&path) {
                    Ok(Some(holder)) if holder == owner.id => {}
                    Ok(_) => continue,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                }
                // Clear the hint first: a set bit must always have its file.
                if let Some(net) = &net {
                    if let Some(sub) = net.subnets.iter().find(|s| s.subnet.contains(addr.ip())) {
                        let pool = Pool::new(sub);
                        if let Some(slot) = pool.slot_of(addr.ip()) {
                            if let Err(e) = self.bitmap(net, &pool, false).and_then(|mut bm| bm.bitmap.mark(&mut bm.words, slot, false)) {
                                errors.push(e);
                            }
                        }
                    }
                }
                if let Err(e) = remove_if_exists(&path) {
                    errors.push(e);
                }
            }
        }
        if let Err(e) = self.update_hosts(&owner, false) {
            errors.push(e);
        }
        if let Some(e) = Error::join(errors) {
            return Err(e.context(format!("release {id}")));
        }
        remove_if_exists(&self.store.owner_path(id))?;
        Ok(Some(owner))
    }

    /// Replace the record of an owner that already holds its leases (to add
    /// facts such as the interface names once known).
    pub fn update_owner(&self, owner: &Owner) -> Result<()> {
        write_json_atomic(&self.store.owner_path(&owner.id), owner)
    }

    /// Remove lease files whose owner has no record (left by tampering or by
    /// an older version); returns how many.
    /// Remove what writers killed before their rename or link left behind
    /// (see `remove_temp_files`); returns how many files.
    pub fn remove_temp_files(&self) -> Result<usize> {
        // STATE/{networks,endpoints,hosts}/F and STATE/ipam/NET/leases/F.
        remove_temp_files(&self.store.dir, 3)
    }

    pub fn remove_orphan_leases(&self) -> Result<usize> {
        let mut n = 0;
        for net in self.store.networks()? {
            for (ip, holder) in self.store.leases(&net.name)? {
                let orphan = check_owner_id(&holder).is_err() || !self.store.owner_path(&holder).exists();
                if orphan {
                    if let Some(sub) = net.subnets.iter().find(|s| s.subnet.contains(ip)) {
                        let pool = Pool::new(sub);
                        if let Some(slot) = pool.slot_of(ip) {
                            let mut bm = self.bitmap(&net, &pool, false)?;
                            bm.bitmap.mark(&mut bm.words, slot, false)?;
                        }
                    }
                    remove_if_exists(&self.store.lease_path(&net.name, ip))?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Open the bitmap of a subnet, building it from the lease files when it
    /// is missing, has the wrong size or `rebuild` is set (a hint may always
    /// be rebuilt).
    fn bitmap(&self, net: &Network, pool: &Pool, rebuild: bool) -> Result<FileBitmap> {
        let dir = self.store.ipam_dir(&net.name);
        let name = pool.subnet().to_string().replace(['/', ':'], "_");
        let path = dir.join(format!("{name}.bitmap"));
        let bitmap = Bitmap::new(pool.slots());
        let want_len = (bitmap.len() * 8) as u64;
        let file = match OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open(&path) {
            Ok(f) if !rebuild && f.metadata()?.len() == want_len => f,
            Ok(_) | Err(_) => self.rebuild_bitmap(net, pool, &bitmap, &path)?,
        };
        let mut words = FileWords::new(file, bitmap.summary_range().end);
        words.load_head().with_context(|| format!("read {}", path.display()))?;
        Ok(FileBitmap { bitmap, words })
    }

    fn rebuild_bitmap(&self, net: &Network, pool: &Pool, bitmap: &Bitmap, path: &Path) -> Result<File> {
        fs::create_dir_all(path.parent().unwrap()).with_context(|| format!("create {}", path.display()))?;
        fs::create_dir_all(self.store.ipam_dir(&net.name).join("leases"))?;
        let mut words = vec![0u64; bitmap.len()];
        bitmap.init(&mut words, pool.reserved())?;
        for (ip, _) in self.store.leases(&net.name)? {
            if let Some(slot) = pool.slot_of(ip) {
                bitmap.mark(&mut words, slot, true)?;
            }
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        write_atomic(path, &bytes, false)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("open {}", path.display()))
    }

    /// Keep the network's hosts file current: one line per named endpoint.
    /// Rewritten in place (not renamed) so bind mounts of it see the change.
    fn update_hosts(&self, owner: &Owner, add: bool) -> Result<()> {
        let Some(name) = &owner.hostname else { return Ok(()) };
        for ep in &owner.endpoints {
            let path = self.store.hosts_path(&ep.network);
            let old = match fs::read_to_string(&path) {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
                Err(e) => return Err(Error::from(e).context(format!("read {}", path.display()))),
            };
            let tag = format!("# {}", owner.id);
            let mut text: String = HOSTS_HEADER.to_string();
            for line in old.lines().filter(|l| !l.is_empty() && !HOSTS_HEADER.contains(*l)) {
                if !line.ends_with(&tag) {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            if add {
                for a in &ep.addresses {
                    text.push_str(&format!("{}\t{name}\t{tag}\n", a.ip()));
                }
            }
            let f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .mode(0o644)
                .open(&path)
                .with_context(|| format!("open {}", path.display()))?;
            // One write, then trim: readers see the old or the new text.
            f.write_all_at(&hosts_image(&text, old.len()), 0).with_context(|| format!("write {}", path.display()))?;
            f.set_len(text.len() as u64).with_context(|| format!("write {}", path.display()))?;
        }
        Ok(())
    }
}

/// What is written over a hosts file of `old_len` bytes before it is
/// trimmed to `text`: the text padded with newlines to the old length, so
/// that a process killed between the write and the trim leaves blank lines
/// (skipped when read), not the tail of a removed line.
fn hosts_image(text: &str, old_len: usize) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    if bytes.len() < old_len {
        bytes.resize(old_len, b'\n');
    }
    bytes
}

const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

struct FileBitmap {
    bitmap: Bitmap,
    words: FileWords,
}

/// Bitmap words in a file: the cursor and summary are read at once, data
/// words one at a time; every write goes straight to the file (an aligned
/// 8-byte pwrite, which a killed process cannot tear).
struct FileWords {
    file: File,
    head: Vec<u64>,
}

impl FileWords {
    fn new(file: File, head_len: usize) -> Self {
        FileWords { file, head: vec![0; head_len] }
    }

    fn load_head(&mut self) -> Result<()> {
        let mut buf = vec![0u8; self.head.len() * 8];
        self.file.read_exact_at(&mut buf, 0)?;
        for (i, c) in buf.chunks_exact(8).enumerate() {
            self.head[i] = u64::from_le_bytes(c.try_into().unwrap());
        }
        Ok(())
    }
}

impl Words for FileWords {
    fn get(&mut self, i: usize) -> Result<u64> {
        if let Some(v) = self.head.as_slice().get(i) {
            return Ok(*v);
        }
        let mut b = [0u8; 8];
        self.file.read_exact_at(&mut b, (i * 8) as u64)?;
        Ok(u64::from_le_bytes(b))
    }

    fn set(&mut self, i: usize, v: u64) -> Result<()> {
        self.file.write_all_at(&v.to_le_bytes(), (i * 8) as u64)?;
        if let Some(h) = self.head.get_mut(i) {
            *h = v;
        }
        Ok(())
    }
}

/// Create a lease file; it must not exist. The file appears complete: the
/// owner is written to a temp file that is then hard-linked to the lease's
/// name (link(2) fails if the name exists, like O_EXCL), so a process killed
/// here leaves at most a temp file (removed by gc), never an empty lease
/// that no owner's release would recognise.
fn create_lease(path: &Path, owner: &str) -> Result<()> {
    let dir = path.parent().ok_or_else(|| Error::new(format!("no directory in {}", path.display())))?;
    if !dir.is_dir() {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let tmp = temp_path(path);
    let res = write_temp(&tmp, owner.as_bytes(), false)
        .with_context(|| format!("write lease {}", tmp.display()))
        .and_then(|()| {
            fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == ErrorKind::AlreadyExists {
                    Error::new(format!("lease {} already exists", path.display()))
                } else {
                    Error::from(e).context(format!("create lease {}", path.display()))
                }
            })
        });
    let _ = fs::remove_file(&tmp);
    res
}

/// The temp file a write of `path` goes through: `.NAME.tmp.PID` beside it
/// (the shape `remove_temp_files` sweeps and listings skip).
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

/// Write `bytes` to the temp file `tmp` (replacing what a dead writer of the
/// same pid left), fsync'd if `sync`.
fn write_temp(tmp: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(tmp)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_all()?;
    }
    Ok(())
}

/// Remove the temp files (`.NAME.tmp.PID`) of writers killed before their
/// rename or link, in every directory of the store. Every writer holds the
/// lock while its temp file exists, so under the lock each one found is a
/// dead writer's. Returns how many were removed.
fn remove_temp_files(dir: &Path, depth: usize) -> Result<usize> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::from(e).context(format!("read {}", dir.display()))),
    };
    let mut n = 0;
    for e in rd {
        let e = e.with_context(|| format!("read {}", dir.display()))?;
        let path = e.path();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let name = e.file_name();
        let name = name.to_string_lossy();
        if is_dir && depth > 0 {
            n += remove_temp_files(&path, depth - 1)?;
        } else if !is_dir && name.starts_with('.') && name.contains(".tmp.") {
            remove_if_exists(&path)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The owner written in a lease file, `None` when there is no lease.
fn read_lease(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::from(e).context(format!("read lease {}", path.display()))),
    }
}

/// Names of the entries of a directory that end with `suffix` (suffix
/// removed), skipping temp files; a missing directory is empty.
fn list_dir(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::from(e).context(format!("read {}", dir.display()))),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.with_context(|| format!("read {}", dir.display()))?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
        if name.contains(".tmp.") || name.starts_with('.') {
            continue;
        }
        if let Some(stem) = name.strip_suffix(suffix) {
            out.push(stem.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// Read a JSON file; `None` when it does not exist. A damaged file is a
/// clear error naming it, never a silent reset.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::from(e).context(format!("read {}", path.display()))),
    };
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|e| Error::new(format!("{} is damaged ({e}); move it away or restore it", path.display())))
}

/// Replace a file atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
    if path.parent().is_none() {
        return Err(Error::new(format!("no directory in {}", path.display())));
    }
    let tmp = temp_path(path);
    if let Err(e) = write_temp(&tmp, bytes, sync).and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::from(e).context(format!("write {}", path.display())));
    }
    Ok(())
}

pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, true)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::from(e).context(format!("remove {}", path.display()))),
    }
}

/// The current time in RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339_utc(secs)
}

/// Seconds since the epoch as RFC 3339 UTC, the form Go's time.Time parses
/// (containerd decodes runc's log lines into time.Time).
pub fn rfc3339_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A random 64-hex-digit id (network ids, like Docker's).
pub fn random_id() -> Result<String> {
    let mut b = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("read /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{plan, CreateRequest};

    fn tmp_store(tag: &str) -> (PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("ipvnet-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        (dir, store)
    }

    fn network(store: &Store, name: &str, args: &[&str]) -> Network {
        let mut req = CreateRequest { name: name.into(), driver: "ipvlan".into(), ipv4: true, ..Default::default() };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let v = it.next().unwrap().to_string();
            match *flag {
                "--subnet" => req.subnets.push(v),
                "--ip-range" => req.ip_ranges.push(v),
                _ => req.options.push(v),
            }
        }
        let (net, _) = plan(&req, &store.networks().unwrap(), format!("{name:0<64}"), now_rfc3339()).unwrap();
        store.lock().unwrap().save_network(&net).unwrap();
        net
    }

    fn owner(id: &str) -> Owner {
        Owner { hostname: Some(id.into()), ..Owner::new(id, OwnerKind::Container) }
    }

    fn take(store: &Store, net: &Network, id: &str, statics: &[&str]) -> Result<Vec<IpAddr>> {
        let want = Want { network: net, interface: "eth0".into(), statics: statics.iter().map(|s| s.parse().unwrap()).collect() };
        let o = store.lock()?.reserve(owner(id), &[want])?;
        Ok(o.endpoints[0].addresses.iter().map(|a| a.ip()).collect())
    }

    #[test]
    fn reserve_release_dual_stack_and_statics() {
        let (dir, store) = tmp_store("basic");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/24", "--subnet", "2001:db8::/64", "-o", "parent=eth0"]);
        assert_eq!(take(&store, &net, "a", &[]).unwrap(), ["10.1.0.2".parse::<IpAddr>().unwrap(), "2001:db8::2".parse().unwrap()]);
        assert_eq!(take(&store, &net, "b", &["10.1.0.50", "2001:db8::50"]).unwrap()[1].to_string(), "2001:db8::50");
        let e = take(&store, &net, "c", &["10.1.0.50"]).unwrap_err().to_string();
        assert!(e.contains("10.1.0.50") && e.contains("in use by b"), "{e}");
        for (ip, word) in [("10.1.0.1", "gateway"), ("10.1.0.255", "broadcast"), ("10.9.9.9", "no subnet")] {
            let e = take(&store, &net, "c", &[ip]).unwrap_err().to_string();
            assert!(e.contains(ip) && e.contains(word), "{e}");
        }
        // A failed reserve leaves nothing behind.
        assert!(store.owner("c").unwrap().is_none());
        assert_eq!(store.leases("n").unwrap().len(), 4);
        let hosts = fs::read_to_string(store.hosts_path("n")).unwrap();
        assert!(hosts.contains("10.1.0.50\tb\t# b"), "{hosts}");
        // Release is by owner and idempotent.
        assert!(store.lock().unwrap().release("b").unwrap().is_some());
        assert!(store.lock().unwrap().release("b").unwrap().is_none());
        assert!(store.lock().unwrap().release("never-was").unwrap().is_none());
        assert_eq!(store.leases("n").unwrap().len(), 2);
        assert!(!fs::read_to_string(store.hosts_path("n")).unwrap().contains("# b"));
        // The static address is free again at once.
        take(&store, &net, "d", &["10.1.0.50"]).unwrap();
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_release_killed_before_the_trim_leaves_no_stale_hosts_line() {
        let (dir, store) = tmp_store("hostskill");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/24", "-o", "parent=eth0"]);
        take(&store, &net, "long-container-name", &["10.1.0.100"]).unwrap();
        take(&store, &net, "b", &["10.1.0.7"]).unwrap();
        let path = store.hosts_path("n");
        let old = fs::read_to_string(&path).unwrap();
        // The file as a SIGKILL between the write and the trim of the
        // release of the first owner leaves it.
        let text = old.lines().filter(|l| !l.ends_with("# long-container-name")).map(|l| format!("{l}\n")).collect::<String>();
        let image = hosts_image(&text, old.len());
        assert_eq!(image.len(), old.len());
        fs::write(&path, &image).unwrap();
        assert_eq!(String::from_utf8(image).unwrap().lines().filter(|l| !l.is_empty()).collect::<Vec<_>>(), text.lines().collect::<Vec<_>>());
        // The next update reads it back whole: b goes, nothing is left.
        store.lock().unwrap().release("long-container-name").unwrap();
        store.lock().unwrap().release("b").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), HOSTS_HEADER);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_record_again_is_refused_and_keeps_the_first() {
        let (dir, store) = tmp_store("again");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/24", "-o", "parent=eth0"]);
        take(&store, &net, "a", &[]).unwrap();
        assert!(take(&store, &net, "a", &[]).unwrap_err().to_string().contains("already attached"));
        assert_eq!(store.leases("n").unwrap().len(), 1);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn full_subnet_says_so_and_changes_nothing() {
        let (dir, store) = tmp_store("full");
        let net = network(&store, "small", &["--subnet", "10.1.0.0/29", "-o", "parent=eth0"]);
        for i in 0..5 {
            take(&store, &net, &format!("o{i}"), &[]).unwrap();
        }
        let before = store.leases("small").unwrap();
        let e = take(&store, &net, "x", &[]).unwrap_err().to_string();
        assert!(e.contains("no free address in small"), "{e}");
        assert_eq!(store.leases("small").unwrap(), before);
        assert!(store.owner("x").unwrap().is_none());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn damaged_or_missing_bitmap_is_rebuilt_from_the_leases() {
        let (dir, store) = tmp_store("bitmap");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/24", "-o", "parent=eth0"]);
        let a = take(&store, &net, "a", &[]).unwrap();
        let bm = dir.join("ipam/n/10.1.0.0_24.bitmap");
        fs::write(&bm, b"garbage").unwrap();
        let b = take(&store, &net, "b", &[]).unwrap();
        assert_ne!(a, b);
        fs::remove_file(&bm).unwrap();
        let c = take(&store, &net, "c", &[]).unwrap();
        assert!(c != a && c != b);
        let _ = fs::remove_dir_all(dir);
    }

    /// The bitmap of 10.1.0.0/28 (16 slots: 1 cursor, 1 summary, 1 data word)
    /// overwritten with `word` in every position, keeping its size.
    fn garble_bitmap(dir: &Path, word: u64) {
        let bm = dir.join("ipam/n/10.1.0.0_28.bitmap");
        let len = fs::metadata(&bm).unwrap().len() as usize;
        fs::write(&bm, word.to_le_bytes().repeat(len / 8)).unwrap();
    }

    #[test]
    fn a_zeroed_bitmap_never_hands_out_reserved_or_outside_addresses() {
        // Found by fuzz/store_load: a bitmap of the right size with the
        // reserved and padding bits cleared handed out 10.1.0.0.
        let (dir, store) = tmp_store("zeroed");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/28", "-o", "parent=eth0"]);
        let mut got = take(&store, &net, "a", &[]).unwrap();
        garble_bitmap(&dir, 0);
        let mut i = 0;
        while let Ok(ips) = take(&store, &net, &format!("o{i}"), &[]) {
            got.extend(ips);
            i += 1;
            assert!(i < 100, "never full");
        }
        let sub = &net.subnets[0];
        for ip in &got {
            check_static(sub, *ip).unwrap();
        }
        let mut uniq = got.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!((uniq.len(), got.len()), (13, 13), "{got:?}"); // 16 - network, gateway, broadcast
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_bitmap_that_says_full_is_checked_against_the_leases() {
        // Found by fuzz/store_load: a bitmap of the right size with every bit
        // set gave "no free address" on a nearly empty subnet.
        let (dir, store) = tmp_store("allset");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/28", "-o", "parent=eth0"]);
        let a = take(&store, &net, "a", &[]).unwrap();
        garble_bitmap(&dir, !0);
        let b = take(&store, &net, "b", &[]).unwrap();
        assert_ne!(a, b);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_full_first_subnet_is_not_rebuilt_while_another_has_room() {
        // Rebuilding reads every lease file: only the refusal path may pay it.
        use std::os::unix::fs::MetadataExt;
        let (dir, store) = tmp_store("fullfirst");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/29", "--subnet", "10.2.0.0/24", "-o", "parent=eth0"]);
        for i in 0..5 {
            let ips = take(&store, &net, &format!("a{i}"), &[]).unwrap();
            assert!(ips[0].to_string().starts_with("10.1.0."), "{ips:?}");
        }
        let bm = dir.join("ipam/n/10.1.0.0_29.bitmap");
        let inode = fs::metadata(&bm).unwrap().ino();
        for i in 0..3 {
            let ips = take(&store, &net, &format!("b{i}"), &[]).unwrap();
            assert!(ips[0].to_string().starts_with("10.2.0."), "{ips:?}");
        }
        assert_eq!(fs::metadata(&bm).unwrap().ino(), inode, "the full subnet's bitmap was rebuilt");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_lease_appears_complete_and_killed_writers_leave_only_temp_files() {
        let (dir, store) = tmp_store("leasetmp");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/24", "-o", "parent=eth0"]);
        let ip = take(&store, &net, "a", &[]).unwrap()[0];
        assert_eq!(fs::read_to_string(dir.join(format!("ipam/n/leases/{ip}"))).unwrap(), "a");
        // A second lease of the same address is refused (link(2) as O_EXCL).
        let e = create_lease(&dir.join(format!("ipam/n/leases/{ip}")), "b").unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        // What writers SIGKILLed before their rename or link leave: temp
        // files, which no listing reports and the sweep removes.
        let leftovers = ["ipam/n/leases/.10.1.0.9.tmp.4242", "endpoints/.c.json.tmp.4242", "networks/.m.json.tmp.7"];
        for f in leftovers {
            fs::write(dir.join(f), "x").unwrap();
        }
        assert_eq!(store.leases("n").unwrap().len(), 1);
        assert_eq!(store.owners().unwrap().len(), 1);
        assert_eq!(store.lock().unwrap().remove_temp_files().unwrap(), 3);
        for f in leftovers {
            assert!(!dir.join(f).exists(), "{f}");
        }
        assert!(dir.join(format!("ipam/n/leases/{ip}")).exists());
        assert!(dir.join("endpoints/a.json").exists() && dir.join("networks/n.json").exists());
        // Before gc sweeps it, a temp file does not keep `network rm` away.
        fs::write(dir.join(leftovers[0]), "x").unwrap();
        store.lock().unwrap().release("a").unwrap();
        assert!(!store.lock().unwrap().has_leases("n").unwrap(), "a temp file is no lease");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_lease_file_without_its_bit_is_skipped_and_healed() {
        // The state a SIGKILL between the lease file and its bit leaves.
        let (dir, store) = tmp_store("heal");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/24", "-o", "parent=eth0"]);
        fs::create_dir_all(dir.join("ipam/n/leases")).unwrap();
        take(&store, &net, "a", &[]).unwrap(); // builds the bitmap
        fs::write(dir.join("ipam/n/leases/10.1.0.3"), "ghost").unwrap();
        assert_eq!(take(&store, &net, "b", &[]).unwrap()[0].to_string(), "10.1.0.4");
        // gc removes the lease whose owner has no record.
        assert_eq!(store.lock().unwrap().remove_orphan_leases().unwrap(), 1);
        assert!(!dir.join("ipam/n/leases/10.1.0.3").exists());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_record_without_its_leases_releases_cleanly_and_never_frees_anothers() {
        // The state a SIGKILL between the record and the lease files leaves,
        // after which another owner took the address.
        let (dir, store) = tmp_store("partial");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/24", "-o", "parent=eth0"]);
        take(&store, &net, "b", &["10.1.0.7"]).unwrap();
        let mut ghost = owner("a");
        ghost.endpoints = vec![Endpoint { network: "n".into(), interface: "eth0".into(), addresses: vec!["10.1.0.7/24".parse().unwrap()] }];
        write_json_atomic(&dir.join("endpoints/a.json"), &ghost).unwrap();
        store.lock().unwrap().release("a").unwrap();
        assert_eq!(store.leases("n").unwrap(), [("10.1.0.7".parse().unwrap(), "b".to_string())]);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_record_naming_another_owner_is_damaged_and_frees_nothing() {
        // Found by fuzz/store_load: endpoints/a.json rewritten to say it is
        // b's record made `release a` remove b's lease.
        let (dir, store) = tmp_store("otherid");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/24", "-o", "parent=eth0"]);
        take(&store, &net, "a", &[]).unwrap();
        take(&store, &net, "b", &["10.1.0.9"]).unwrap();
        let mut forged = store.owner("b").unwrap().unwrap();
        forged.labels.insert("pid".into(), "1".into());
        write_json_atomic(&dir.join("endpoints/a.json"), &forged).unwrap();
        let e = store.lock().unwrap().release("a").unwrap_err().to_string();
        assert!(e.contains("endpoints/a.json") && e.contains("damaged"), "{e}");
        let e = store.owners().unwrap_err().to_string();
        assert!(e.contains("endpoints/a.json"), "{e}");
        assert!(store.leases("n").unwrap().contains(&("10.1.0.9".parse().unwrap(), "b".to_string())));
        // A record naming a network that cannot exist is damaged too.
        let mut odd = owner("c");
        odd.endpoints = vec![Endpoint { network: "../n".into(), interface: "eth0".into(), addresses: vec![] }];
        write_json_atomic(&dir.join("endpoints/c.json"), &odd).unwrap();
        assert!(store.owner("c").unwrap_err().to_string().contains("endpoints/c.json"));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn damaged_records_are_clear_errors_not_resets() {
        let (dir, store) = tmp_store("damaged");
        network(&store, "n", &["--subnet", "10.1.0.0/24", "-o", "parent=eth0"]);
        fs::write(dir.join("endpoints/x.json"), "{\"id\": ").unwrap();
        let e = store.owners().unwrap_err().to_string();
        assert!(e.contains("endpoints/x.json") && e.contains("damaged"), "{e}");
        fs::write(dir.join("networks/n.json"), "").unwrap();
        let e = store.network("n").unwrap_err().to_string();
        assert!(e.contains("networks/n.json"), "{e}");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn threads_with_their_own_store_never_share_an_address() {
        let (dir, store) = tmp_store("threads");
        let net = network(&store, "n", &["--subnet", "10.1.0.0/24", "-o", "parent=eth0"]);
        let all: Vec<IpAddr> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|t| {
                    let (dir, net) = (&dir, &net);
                    s.spawn(move || {
                        // Each opens its own lock file description, like a process.
                        let store = Store::open(dir).unwrap();
                        (0..8).flat_map(|i| take(&store, net, &format!("t{t}-{i}"), &[]).unwrap()).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut uniq = all.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 128);
        let _ = fs::remove_dir_all(dir);
    }
}
