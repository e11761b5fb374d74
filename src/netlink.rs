//! A small synchronous rtnetlink client: one `NETLINK_ROUTE` socket and the
//! handful of link, address and route operations ipvnet needs.
//!
//! Every request asks for an acknowledgement and reads until the ack (or the
//! error) for its own sequence number, so a failure is always reported by
//! the operation that caused it. Kernel errors are turned into messages that
//! name the operation and the link, keep the errno, and include the kernel's
//! extended-ack text when it sends one.

use std::fmt;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::str::FromStr;

use ipnetwork::IpNetwork;
use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoVlan, IpVlanFlags, IpVlanMode as NlIpVlanMode,
    LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

// ---------------------------------------------------------------------------
// ipvlan mode and flag
// ---------------------------------------------------------------------------

/// ipvlan operating mode of a parent ("port"); shared by all its slaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpvlanMode {
    /// Docker's default.
    #[default]
    L2,
    L3,
    L3s,
}

impl IpvlanMode {
    pub const ALL: [IpvlanMode; 3] = [IpvlanMode::L2, IpvlanMode::L3, IpvlanMode::L3s];

    /// The kernel's IFLA_IPVLAN_MODE value.
    pub fn kernel_value(self) -> u16 {
        match self {
            IpvlanMode::L2 => 0,
            IpvlanMode::L3 => 1,
            IpvlanMode::L3s => 2,
        }
    }

    pub fn from_kernel(v: u16) -> Option<Self> {
        IpvlanMode::ALL.into_iter().find(|m| m.kernel_value() == v)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IpvlanMode::L2 => "l2",
            IpvlanMode::L3 => "l3",
            IpvlanMode::L3s => "l3s",
        }
    }
}

impl fmt::Display for IpvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IpvlanMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        IpvlanMode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::new(format!(
                    "invalid ipvlan mode {s:?}: expected one of l2, l3, l3s"
                ))
            })
    }
}

/// ipvlan port flag: how slaves of one parent may talk to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpvlanFlag {
    /// Docker's default (no flag bits).
    #[default]
    Bridge,
    Private,
    Vepa,
}

impl IpvlanFlag {
    pub const ALL: [IpvlanFlag; 3] = [IpvlanFlag::Bridge, IpvlanFlag::Private, IpvlanFlag::Vepa];

    /// The kernel's IFLA_IPVLAN_FLAGS value.
    pub fn kernel_value(self) -> u16 {
        match self {
            IpvlanFlag::Bridge => 0,
            IpvlanFlag::Private => 0x01,
            IpvlanFlag::Vepa => 0x02,
        }
    }

    /// None for values no single flag gives (both bits set is invalid).
    pub fn from_kernel(v: u16) -> Option<Self> {
        IpvlanFlag::ALL.into_iter().find(|f| f.kernel_value() == v)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IpvlanFlag::Bridge => "bridge",
            IpvlanFlag::Private => "private",
            IpvlanFlag::Vepa => "vepa",
        }
    }
}

impl fmt::Display for IpvlanFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IpvlanFlag {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        IpvlanFlag::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::new(format!(
                    "invalid ipvlan flag {s:?}: expected one of bridge, private, vepa"
                ))
            })
    }
}

// ---------------------------------------------------------------------------
// Public data types
// ---------------------------------------------------------------------------

/// One network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFLA_INFO_KIND: "vlan", "dummy", "ipvlan", "veth", ...; None for
    /// plain hardware devices and loopback.
    pub kind: Option<String>,
    /// IFLA_LINK: the lower device's index. For a link whose lower device
    /// lives in another namespace this index belongs to that namespace.
    pub parent: Option<u32>,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub vlan_id: Option<u16>,
    pub ipvlan: Option<(IpvlanMode, IpvlanFlag)>,
}

/// What `create_ipvlan` sends.
#[derive(Debug, Clone, Copy)]
pub struct IpvlanRequest<'a> {
    pub name: &'a str,
    /// Index of the parent in the socket's namespace.
    pub parent: u32,
    pub mode: IpvlanMode,
    pub flag: IpvlanFlag,
    /// None: the slave follows the parent's MTU.
    pub mtu: Option<u32>,
    /// Some: the link is born inside that namespace (IFLA_NET_NS_FD).
    pub netns: Option<BorrowedFd<'a>>,
}

/// Check an interface name the way the kernel will (dev_valid_name), so a
/// bad name is reported with its value before anything is created.
pub fn check_ifname(name: &str) -> Result<()> {
    // IFNAMSIZ is 16 including the terminating NUL.
    if name.is_empty() || name.len() > 15 {
        return Err(Error::with_errno(
            format!(
                "invalid interface name {name:?}: must be 1 to 15 bytes long (it is {})",
                name.len()
            ),
            libc::EINVAL,
        ));
    }
    if name == "." || name == ".." {
        return Err(Error::with_errno(
            format!("invalid interface name {name:?}: \".\" and \"..\" are reserved"),
            libc::EINVAL,
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || *c == '\0' || c.is_whitespace())
    {
        return Err(Error::with_errno(
            format!("invalid interface name {name:?}: it must not contain {c:?} (no '/', ':', NUL or whitespace)"),
            libc::EINVAL,
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Kernel answers
// ---------------------------------------------------------------------------

const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSG_HDRLEN: usize = 16;
/// Give up on a dump that keeps being interrupted by concurrent changes.
const DUMP_RETRIES: usize = 20;
/// Receive buffer. The kernel sizes dump batches after the largest buffer
/// we have offered (up to 32 KiB), so a large one means few, full batches.
const RECV_BUF: usize = 64 * 1024;

/// Why one request failed, before it is worded for the operation.
#[derive(Debug)]
enum Failure {
    /// The kernel refused: positive errno and its extended-ack text.
    Kernel { errno: i32, ext: Option<String> },
    /// Socket or parse trouble on our side.
    Local(Error),
}

impl Failure {
    fn errno(&self) -> Option<i32> {
        match self {
            Failure::Kernel { errno, .. } => Some(*errno),
            Failure::Local(e) => e.errno(),
        }
    }

    fn ext(&self) -> Option<&str> {
        match self {
            Failure::Kernel { ext, .. } => ext.as_deref(),
            Failure::Local(_) => None,
        }
    }

    /// "netlink OP: strerror (errno N; kernel says: ...)".
    fn generic(self, op: &str) -> Error {
        match self {
            Failure::Kernel { errno, ext } => Error::with_errno(
                format!("netlink {op}: {}", describe_errno(errno, ext.as_deref())),
                errno,
            ),
            Failure::Local(e) => e.context(format!("netlink {op}")),
        }
    }

    /// A specific message for this errno, keeping the kernel's text.
    fn worded(self, op: &str, what: impl fmt::Display) -> Error {
        let errno = self.errno().unwrap_or(0);
        let ext = self
            .ext()
            .map(|t| format!(" (kernel: {t})"))
            .unwrap_or_default();
        Error::with_errno(format!("{op}: {what}{ext}"), errno)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Local(e)
    }
}

fn strerror(errno: i32) -> &'static str {
    nix::errno::Errno::from_raw(errno).desc()
}

fn describe_errno(errno: i32, ext: Option<&str>) -> String {
    match ext {
        Some(t) => format!("{} (errno {errno}; kernel: {t})", strerror(errno)),
        None => format!("{} (errno {errno})", strerror(errno)),
    }
}

/// The extended-ack message text of an NLMSG_ERROR (or NLMSG_DONE) payload.
/// `flags` are the answer's own header flags, `payload` what follows the
/// error code: the request (capped to its header with NETLINK_CAP_ACK) and
/// then, with NLM_F_ACK_TLVS, the attributes.
fn parse_extack(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let skip = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = u32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?) as usize;
        len.max(NLMSG_HDRLEN)
    };
    let mut tlvs = payload.get(align4(skip)..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            break;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or(&[]);
            let text = String::from_utf8_lossy(text)
                .trim()
                .trim_end_matches('.')
                .to_string();
            return (!text.is_empty()).then_some(text);
        }
        tlvs = tlvs.get(align4(len)..).unwrap_or(&[]);
    }
    None
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

// ---------------------------------------------------------------------------
// The socket
// ---------------------------------------------------------------------------

/// A NETLINK_ROUTE socket bound in one network namespace.
pub struct Netlink {
    sock: Socket,
    seq: u32,
    dump_retries: u64,
}

impl Netlink {
    /// A socket in the calling thread's current network namespace.
    pub fn open() -> Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)
            .map_err(|e| Error::from(e).context("open netlink socket"))?;
        sock.bind_auto()
            .map_err(|e| Error::from(e).context("bind netlink socket"))?;
        // Only the kernel (port 0) may talk to us.
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::from(e).context("connect netlink socket"))?;
        // Extended acks carry the kernel's reason ("Unknown device type", ...);
        // capped acks keep error answers small. Both are best effort: old
        // kernels only lose the extra text.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        // Start sequence numbers somewhere distinct per socket, which keeps
        // strace output readable when several sockets are open.
        let seq = (std::process::id() << 16) ^ (sock.as_raw_fd() as u32);
        Ok(Netlink {
            sock,
            seq,
            dump_retries: 0,
        })
    }

    /// A socket that lives in the namespace `netns`: it is created on a
    /// short-lived thread that joined that namespace, and keeps operating
    /// there afterwards whatever thread uses it.
    pub fn open_in(netns: BorrowedFd<'_>) -> Result<Self> {
        crate::netns::run_in(netns, Netlink::open)
            .and_then(|r| r)
            .map_err(|e| e.context("open netlink socket in another network namespace"))
    }

    // -- plumbing ----------------------------------------------------------

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    fn send(&mut self, msg: &RouteNetlinkMessage, flags: u16) -> std::result::Result<u32, Failure> {
        let seq = self.next_seq();
        let bytes = encode(msg.clone(), flags, seq);
        self.sock
            .send(&bytes, 0)
            .map_err(|e| Error::from(e).context("send netlink request"))?;
        Ok(seq)
    }

    /// One whole datagram from the kernel, however large.
    fn recv_datagram(&mut self) -> std::result::Result<Vec<u8>, Failure> {
        let mut cap = RECV_BUF;
        loop {
            // Peek first: MSG_TRUNC makes the kernel report the real size.
            let mut buf = Vec::with_capacity(cap);
            match self.sock.recv(&mut buf, libc::MSG_PEEK | libc::MSG_TRUNC) {
                Ok(n) if n > buf.len() => cap = n,
                Ok(n) => {
                    buf.clear();
                    match self.sock.recv(&mut buf, 0) {
                        Ok(got) => {
                            debug_assert_eq!(got, n);
                            return Ok(buf);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            return Err(Error::from(e).context("receive netlink answer").into())
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from(e).context("receive netlink answer").into()),
            }
        }
    }

    /// Send one request and collect the answers carrying its sequence
    /// number until the ack / error (requests) or NLMSG_DONE (dumps).
    /// Returns the answers and whether a dump was marked inconsistent.
    fn exchange(
        &mut self,
        msg: &RouteNetlinkMessage,
        flags: u16,
    ) -> std::result::Result<(Vec<RouteNetlinkMessage>, bool), Failure> {
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let seq = self.send(msg, flags)?;
        let mut answers = Vec::new();
        let mut interrupted = false;
        // A parse failure must not leave this request's answers queued for
        // the next one: keep reading to the end and report it then.
        let mut parse_error: Option<Error> = None;
        loop {
            let data = self.recv_datagram()?;
            let mut rest = &data[..];
            while rest.len() >= NLMSG_HDRLEN {
                let buf = NetlinkBuffer::new_checked(rest)
                    .map_err(|e| Error::new(format!("malformed netlink answer: {e}")))?;
                let len = buf.length() as usize;
                let this = &rest[..len];
                rest = rest.get(align4(len)..).unwrap_or(&[]);
                if buf.sequence_number() != seq {
                    // Left over from an earlier request that failed midway.
                    continue;
                }
                let hflags = buf.flags();
                if hflags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                let payload = &this[NLMSG_HDRLEN..];
                match buf.message_type() {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR | NLMSG_DONE => {
                        let code = payload
                            .get(0..4)
                            .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                            .unwrap_or(0);
                        if code < 0 {
                            let ext = parse_extack(hflags, payload.get(4..).unwrap_or(&[]));
                            return Err(Failure::Kernel { errno: -code, ext });
                        }
                        // An ack ends a request; for a dump only DONE ends it.
                        if !dump || buf.message_type() == NLMSG_DONE {
                            return match parse_error {
                                Some(e) => Err(Failure::Local(e)),
                                None => Ok((answers, interrupted)),
                            };
                        }
                    }
                    _ => match NetlinkMessage::<RouteNetlinkMessage>::deserialize(this) {
                        Ok(NetlinkMessage {
                            payload: NetlinkPayload::InnerMessage(m),
                            ..
                        }) => answers.push(m),
                        Ok(_) => {}
                        Err(e) => {
                            parse_error.get_or_insert_with(|| {
                                Error::new(format!("cannot parse netlink answer: {e}"))
                            });
                        }
                    },
                }
            }
        }
    }

    /// A request that changes something: NLM_F_ACK, answers discarded.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> std::result::Result<(), Failure> {
        self.exchange(&msg, NLM_F_ACK | flags).map(drop)
    }

    /// A dump, retried while the kernel says it was interrupted.
    fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> std::result::Result<Vec<RouteNetlinkMessage>, Failure> {
        for attempt in 0..DUMP_RETRIES {
            let (answers, interrupted) = self.exchange(&msg, NLM_F_DUMP)?;
            if !interrupted {
                return Ok(answers);
            }
            // An interrupted dump may have skipped entries, so it is never
            // used. Back off a little so a burst of changes can pass.
            self.dump_retries += 1;
            std::thread::sleep(std::time::Duration::from_millis(1 << attempt.min(5)));
        }
        Err(Failure::Local(Error::with_errno(
            format!(
                "dump still inconsistent after {DUMP_RETRIES} tries (the table keeps changing)"
            ),
            libc::EINTR,
        )))
    }

    /// How many dumps this socket had to repeat because the kernel marked
    /// them inconsistent (NLM_F_DUMP_INTR); for diagnostics and tests.
    pub fn dump_retries(&self) -> u64 {
        self.dump_retries
    }

    /// "eth0 (index 4)" or "index 4", for error messages.
    fn describe(&mut self, index: u32) -> String {
        match self.link_by_index(index) {
            Ok(Some(l)) => format!("{} (index {index})", l.name),
            _ => format!("index {index}"),
        }
    }

    // -- links -------------------------------------------------------------

    /// Every link in the socket's namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let answers = self
            .dump(RouteNetlinkMessage::GetLink(msg))
            .map_err(|f| f.generic("list links"))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from_message(&l)),
                _ => None,
            })
            .collect())
    }

    /// The link called `name`, or None when there is none.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        check_ifname(name).map_err(|e| e.context("look up link"))?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.get_link(msg, &format!("link {name}"))
    }

    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.get_link(msg, &format!("link index {index}"))
    }

    fn get_link(&mut self, msg: LinkMessage, what: &str) -> Result<Option<Link>> {
        match self.exchange(&RouteNetlinkMessage::GetLink(msg), NLM_F_ACK) {
            Ok((answers, _)) => Ok(answers.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from_message(l)),
                _ => None,
            })),
            Err(f) if f.errno() == Some(libc::ENODEV) => Ok(None),
            Err(f) => Err(f.generic(&format!("get {what}"))),
        }
    }

    pub fn create_dummy(&mut self, name: &str) -> Result<()> {
        let op = format!("create dummy link {name}");
        check_ifname(name).map_err(|e| e.context(&op))?;
        let msg = new_link_message(name, InfoKind::Dummy, None);
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|f| create_error(f, &op, name, "dummy"))
    }

    pub fn create_vlan(&mut self, name: &str, parent: u32, vid: u16) -> Result<()> {
        let op = format!("create vlan link {name} (id {vid})");
        check_ifname(name).map_err(|e| e.context(&op))?;
        if !(1..=4094).contains(&vid) {
            return Err(Error::with_errno(
                format!("{op}: vlan id {vid} is out of range 1-4094"),
                libc::ERANGE,
            ));
        }
        let msg = vlan_message(name, parent, vid);
        match self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL) {
            Ok(()) => Ok(()),
            Err(f) => {
                let op = format!("{op} on parent {}", self.describe(parent));
                Err(match f.errno() {
                    Some(libc::ENODEV) if !f.ext().is_some_and(|t| t.contains("device type")) => {
                        f.worded(&op, format!("parent index {parent} does not exist"))
                    }
                    _ => create_error(f, &op, name, "8021q"),
                })
            }
        }
    }

    /// Create an ipvlan slave. Mode and flag are always sent: they belong to
    /// the parent, and an omitted flag would silently keep the old one.
    pub fn create_ipvlan(&mut self, req: &IpvlanRequest) -> Result<()> {
        let op = format!(
            "create ipvlan link {} (mode {}, flag {})",
            req.name, req.mode, req.flag
        );
        check_ifname(req.name).map_err(|e| e.context(&op))?;
        let msg = ipvlan_message(req);
        match self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL) {
            Ok(()) => Ok(()),
            Err(f) => {
                let parent = self.describe(req.parent);
                let op = format!("{op} on parent {parent}");
                Err(match f.errno() {
                    Some(libc::EBUSY) => f.worded(
                        &op,
                        format!("parent {parent} is already in use by another driver (bridge, bond or macvlan)"),
                    ),
                    Some(libc::ENODEV) if !f.ext().is_some_and(|t| t.contains("device type")) => {
                        f.worded(&op, format!("parent index {} does not exist", req.parent))
                    }
                    // The kernel refuses a loopback or non-Ethernet parent
                    // with a bare EINVAL (6.1) or EOPNOTSUPP, without text.
                    Some(libc::EINVAL) if f.ext().is_none() => f.worded(
                        &op,
                        format!("parent {parent} cannot carry ipvlan links (it must be an Ethernet device, not loopback)"),
                    ),
                    Some(libc::EOPNOTSUPP) if !is_unknown_kind(&f) => f.worded(
                        &op,
                        format!("parent {parent} cannot carry ipvlan links (it must be an Ethernet device, not loopback)"),
                    ),
                    _ => create_error(f, &op, req.name, "ipvlan"),
                })
            }
        }
    }

    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let what = self.describe(index);
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(msg), 0)
            .map_err(|f| match f.errno() {
                Some(libc::ENODEV) => f.worded(&format!("delete link {what}"), "no such link"),
                _ => f.generic(&format!("delete link {what}")),
            })
    }

    pub fn rename_link(&mut self, index: u32, name: &str) -> Result<()> {
        let what = self.describe(index);
        let op = format!("rename link {what} to {name}");
        check_ifname(name).map_err(|e| e.context(&op))?;
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
            .map_err(|f| match f.errno() {
                Some(libc::EEXIST) => f.worded(&op, format!("link {name} already exists")),
                Some(libc::EBUSY) => f.worded(
                    &op,
                    "the link is up (the kernel renames only links that are down)",
                ),
                Some(libc::ENODEV) => f.worded(&op, "no such link"),
                _ => f.generic(&op),
            })
    }

    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
            .map_err(|f| {
                let op = format!("set link {} up", self.describe(index));
                match f.errno() {
                    Some(libc::ENODEV) => f.worded(&op, "no such link"),
                    _ => f.generic(&op),
                }
            })
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
            .map_err(|f| {
                let op = format!("set MTU {mtu} on link {}", self.describe(index));
                match f.errno() {
                    Some(libc::ENODEV) => f.worded(&op, "no such link"),
                    Some(libc::EINVAL) => {
                        f.worded(&op, "MTU out of the range the link (or its parent) allows")
                    }
                    _ => f.generic(&op),
                }
            })
    }

    // -- addresses ---------------------------------------------------------

    /// Add `addr` (address and prefix length). IPv6 addresses skip duplicate
    /// address detection so they are usable at once; IPv4 ones get their
    /// subnet's broadcast address.
    pub fn add_address(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        let msg = address_message(index, addr);
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|f| {
            let op = format!("add address {addr} to link {}", self.describe(index));
            match f.errno() {
                Some(libc::EADDRINUSE) => f.worded(
                    &op,
                    format!(
                        "address {} is already assigned to an ipvlan device on this parent",
                        addr.ip()
                    ),
                ),
                Some(libc::EEXIST) => f.worded(
                    &op,
                    format!("address {} is already on this link", addr.ip()),
                ),
                Some(libc::ENODEV) => f.worded(&op, "no such link"),
                _ => f.generic(&op),
            }
        })
    }

    /// Every address on link `index` (IPv4 and IPv6, including the IPv6
    /// link-local one the kernel adds by itself).
    pub fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>> {
        let answers = self
            .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
            .map_err(|f| f.generic(&format!("list addresses of link index {index}")))?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => network_of(a),
                _ => None,
            })
            .collect())
    }

    // -- routes ------------------------------------------------------------

    /// Add a default route in the main table. With a gateway it goes via
    /// that gateway out of `oif`; without one it is a device route (what
    /// L3/L3S slaves need: they have no ARP).
    pub fn add_default_route(&mut self, v6: bool, gateway: Option<IpAddr>, oif: u32) -> Result<()> {
        let family = if v6 { "IPv6" } else { "IPv4" };
        if let Some(gw) = gateway {
            if gw.is_ipv6() != v6 {
                return Err(Error::with_errno(
                    format!("add {family} default route: gateway {gw} is not an {family} address"),
                    libc::EINVAL,
                ));
            }
        }
        let msg = default_route_message(v6, gateway, oif);
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|f| {
            let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
            let op = format!("add {family} default route{via} dev {}", self.describe(oif));
            match f.errno() {
                Some(libc::EEXIST) => f.worded(
                    &op,
                    "a default route already exists (perhaps from a router advertisement)",
                ),
                Some(libc::ENETUNREACH) => f.worded(
                    &op,
                    format!("gateway{via} is not reachable: no address of its subnet on the link"),
                ),
                Some(libc::ENETDOWN) => f.worded(&op, "the link is down (bring it up first)"),
                Some(libc::ENODEV) => f.worded(&op, "no such link"),
                _ => f.generic(&op),
            }
        })
    }

    /// Add `dst dev OIF` (scope link): how an L3 endpoint reaches the other
    /// subnets of its network when it has no default route through them.
    pub fn add_device_route(&mut self, dst: IpNetwork, oif: u32) -> Result<()> {
        let mut msg = default_route_message(dst.is_ipv6(), None, oif);
        msg.header.destination_prefix_length = dst.prefix();
        msg.attributes
            .insert(0, RouteAttribute::Destination(RouteAddress::from(dst.network())));
        self.request(RouteNetlinkMessage::NewRoute(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|f| {
                let op = format!("add route {dst} dev {}", self.describe(oif));
                match f.errno() {
                    Some(libc::EEXIST) => f.worded(&op, "a route to it already exists"),
                    Some(libc::ENETDOWN) => f.worded(&op, "the link is down (bring it up first)"),
                    _ => f.generic(&op),
                }
            })
    }

    /// Whether the main table has any default route of that family.
    pub fn has_default_route(&mut self, v6: bool) -> Result<bool> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let answers = self.dump(RouteNetlinkMessage::GetRoute(msg)).map_err(|f| {
            f.generic(if v6 {
                "list IPv6 routes"
            } else {
                "list IPv4 routes"
            })
        })?;
        Ok(answers.iter().any(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => is_main_default(r),
            _ => false,
        }))
    }
}

/// Creation errors common to every kind; `module` is the kernel module that
/// provides the kind.
fn create_error(f: Failure, op: &str, name: &str, module: &str) -> Error {
    match f.errno() {
        Some(libc::EEXIST) => f.worded(op, format!("link {name} already exists")),
        Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) if is_unknown_kind(&f) => {
            let kind = if module == "8021q" {
                "802.1q vlan"
            } else {
                module
            };
            f.worded(
                op,
                format!("the kernel has no {kind} support (module {module} not loaded/available)"),
            )
        }
        _ => f.generic(op),
    }
}

/// The kernel's answer when no driver registered the requested kind: it
/// tried to load the module and failed ("Unknown device type").
fn is_unknown_kind(f: &Failure) -> bool {
    match (f.errno(), f.ext()) {
        (Some(libc::EOPNOTSUPP) | Some(libc::ENODEV), Some(t)) => t.contains("Unknown device type"),
        // Kernels without extended acks only give the errno.
        (Some(libc::EOPNOTSUPP), None) => true,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Message building and reading (pure, unit-tested)
// ---------------------------------------------------------------------------

fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    packet.finalize();
    let mut bytes = vec![0; packet.buffer_len()];
    packet.serialize(&mut bytes);
    bytes
}

fn new_link_message(name: &str, kind: InfoKind, data: Option<InfoData>) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    let mut info = vec![LinkInfo::Kind(kind)];
    info.extend(data.map(LinkInfo::Data));
    msg.attributes.push(LinkAttribute::LinkInfo(info));
    msg
}

fn vlan_message(name: &str, parent: u32, vid: u16) -> LinkMessage {
    let mut msg = new_link_message(
        name,
        InfoKind::Vlan,
        Some(InfoData::Vlan(vec![InfoVlan::Id(vid)])),
    );
    msg.attributes.push(LinkAttribute::Link(parent));
    msg
}

fn ipvlan_message(req: &IpvlanRequest) -> LinkMessage {
    let data = InfoData::IpVlan(vec![
        InfoIpVlan::Mode(NlIpVlanMode::from(req.mode.kernel_value())),
        InfoIpVlan::Flags(IpVlanFlags::from_bits_retain(req.flag.kernel_value())),
    ]);
    let mut msg = new_link_message(req.name, InfoKind::IpVlan, Some(data));
    msg.attributes.push(LinkAttribute::Link(req.parent));
    if let Some(mtu) = req.mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(ns) = req.netns {
        msg.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    }
    msg
}

fn address_message(index: u32, addr: IpNetwork) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = addr.prefix();
    msg.header.scope = AddressScope::Universe;
    match addr {
        IpNetwork::V4(net) => {
            msg.header.family = AddressFamily::Inet;
            // IFA_LOCAL is the address itself; IFA_ADDRESS the same on a
            // non point-to-point link.
            msg.attributes
                .push(AddressAttribute::Local(IpAddr::V4(net.ip())));
            msg.attributes
                .push(AddressAttribute::Address(IpAddr::V4(net.ip())));
            // /31 and /32 have no broadcast address.
            if net.prefix() < 31 {
                msg.attributes
                    .push(AddressAttribute::Broadcast(net.broadcast()));
            }
        }
        IpNetwork::V6(net) => {
            msg.header.family = AddressFamily::Inet6;
            // Without NODAD the address is "tentative" for a second or more
            // and the container's first packets fail. The header byte is the
            // legacy place, IFA_FLAGS the full one; send both.
            msg.header.flags = AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Address(IpAddr::V6(net.ip())));
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
    msg
}

fn default_route_message(v6: bool, gateway: Option<IpAddr>, oif: u32) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    msg.header.destination_prefix_length = 0;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Static;
    msg.header.kind = RouteType::Unicast;
    // An IPv4 route without a gateway is "directly connected": scope link.
    msg.header.scope = if gateway.is_none() && !v6 {
        RouteScope::Link
    } else {
        RouteScope::Universe
    };
    if let Some(gw) = gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    }
    msg.attributes.push(RouteAttribute::Oif(oif));
    msg
}

fn is_main_default(r: &RouteMessage) -> bool {
    let table = r
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(r.header.table as u32);
    r.header.destination_prefix_length == 0
        && table == RouteHeader::RT_TABLE_MAIN as u32
        && r.header.kind == RouteType::Unicast
}

fn network_of(a: &AddressMessage) -> Option<IpNetwork> {
    // For IPv4 IFA_LOCAL is the interface's own address (IFA_ADDRESS is the
    // peer on point-to-point links); IPv6 only has IFA_ADDRESS.
    let find = |want_local: bool| {
        a.attributes
            .iter()
            .find_map(|attr| match (attr, want_local) {
                (AddressAttribute::Local(ip), true) | (AddressAttribute::Address(ip), false) => {
                    Some(*ip)
                }
                _ => None,
            })
    };
    let ip = find(true).or_else(|| find(false))?;
    IpNetwork::new(ip, a.header.prefix_len).ok()
}

fn link_from_message(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        parent: None,
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        vlan_id: None,
        ipvlan: None,
    };
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(v) => link.mtu = *v,
            LinkAttribute::Link(p) => link.parent = Some(*p),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => link.kind = Some(k.to_string()),
                        LinkInfo::Data(InfoData::Vlan(v)) => {
                            link.vlan_id = v.iter().find_map(|x| match x {
                                InfoVlan::Id(id) => Some(*id),
                                _ => None,
                            })
                        }
                        LinkInfo::Data(InfoData::IpVlan(v)) => {
                            let mut mode = None;
                            let mut flag = Some(IpvlanFlag::Bridge);
                            for x in v {
                                match x {
                                    InfoIpVlan::Mode(m) => {
                                        mode = IpvlanMode::from_kernel(u16::from(*m))
                                    }
                                    InfoIpVlan::Flags(f) => {
                                        flag = IpvlanFlag::from_kernel(f.bits())
                                    }
                                    _ => {}
                                }
                            }
                            link.ipvlan = mode.zip(flag);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    link
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk netlink attributes: (type without flag bits, value).
    fn attrs(mut b: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        while b.len() >= 4 {
            let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
            let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
            assert!(len >= 4 && len <= b.len(), "bad attribute length {len}");
            out.push((kind, b[4..len].to_vec()));
            b = &b[align4(len).min(b.len())..];
        }
        out
    }

    fn attr(list: &[(u16, Vec<u8>)], kind: u16) -> Vec<u8> {
        list.iter()
            .find(|(k, _)| *k == kind)
            .unwrap_or_else(|| panic!("no attribute {kind} in {list:?}"))
            .1
            .clone()
    }

    fn u16v(v: &[u8]) -> u16 {
        u16::from_ne_bytes(v[..2].try_into().unwrap())
    }

    fn u32v(v: &[u8]) -> u32 {
        u32::from_ne_bytes(v[..4].try_into().unwrap())
    }

    #[test]
    fn mode_and_flag_parse_case_insensitively_and_round_trip() {
        for m in IpvlanMode::ALL {
            assert_eq!(m.to_string().parse::<IpvlanMode>().unwrap(), m);
            assert_eq!(
                m.to_string().to_uppercase().parse::<IpvlanMode>().unwrap(),
                m
            );
            assert_eq!(IpvlanMode::from_kernel(m.kernel_value()), Some(m));
        }
        for f in IpvlanFlag::ALL {
            assert_eq!(f.to_string().parse::<IpvlanFlag>().unwrap(), f);
            assert_eq!(
                f.to_string().to_uppercase().parse::<IpvlanFlag>().unwrap(),
                f
            );
            assert_eq!(IpvlanFlag::from_kernel(f.kernel_value()), Some(f));
        }
        assert_eq!("L3S".parse::<IpvlanMode>().unwrap(), IpvlanMode::L3s);
        assert_eq!(
            [IpvlanMode::L2, IpvlanMode::L3, IpvlanMode::L3s].map(|m| m.kernel_value()),
            [0, 1, 2]
        );
        assert_eq!(
            [IpvlanFlag::Bridge, IpvlanFlag::Private, IpvlanFlag::Vepa].map(|f| f.kernel_value()),
            [0, 1, 2]
        );
        assert_eq!(IpvlanFlag::from_kernel(3), None);
    }

    #[test]
    fn bad_mode_and_flag_name_value_and_choices() {
        let e = "l4".parse::<IpvlanMode>().unwrap_err().to_string();
        assert!(e.contains("\"l4\"") && e.contains("l2, l3, l3s"), "{e}");
        let e = "passthru".parse::<IpvlanFlag>().unwrap_err().to_string();
        assert!(
            e.contains("\"passthru\"") && e.contains("bridge, private, vepa"),
            "{e}"
        );
    }

    #[test]
    fn mode_and_flag_serialize_lowercase() {
        assert_eq!(serde_json::to_string(&IpvlanMode::L3s).unwrap(), "\"l3s\"");
        assert_eq!(
            serde_json::to_string(&IpvlanFlag::Private).unwrap(),
            "\"private\""
        );
        assert_eq!(
            serde_json::from_str::<IpvlanMode>("\"l2\"").unwrap(),
            IpvlanMode::L2
        );
        assert_eq!(
            serde_json::from_str::<IpvlanFlag>("\"vepa\"").unwrap(),
            IpvlanFlag::Vepa
        );
    }

    #[test]
    fn ifname_rules() {
        for ok in ["eth0", "a", "ipvl-0123456789", "db_net.10", "x@y"] {
            check_ifname(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "0123456789abcdef",
            ".",
            "..",
            "a/b",
            "a b",
            "a\tb",
            "eth0:1",
            "a\0b",
        ] {
            let e = check_ifname(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
            assert_eq!(e.errno(), Some(libc::EINVAL));
        }
    }

    #[test]
    fn ipvlan_request_carries_parent_mode_flags_mtu_and_netns() {
        let ns = std::fs::File::open("/proc/self/ns/net").unwrap();
        use std::os::fd::AsFd;
        let req = IpvlanRequest {
            name: "ipv0",
            parent: 7,
            mode: IpvlanMode::L3s,
            flag: IpvlanFlag::Private,
            mtu: Some(1400),
            netns: Some(ns.as_fd()),
        };
        let bytes = encode(
            RouteNetlinkMessage::NewLink(ipvlan_message(&req)),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            9,
        );
        assert_eq!(u16v(&bytes[4..]), 16, "RTM_NEWLINK");
        assert_eq!(
            u16v(&bytes[6..]),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        assert_eq!(u32v(&bytes[8..]), 9);
        let top = attrs(&bytes[NLMSG_HDRLEN + 16..]);
        assert_eq!(attr(&top, 3), b"ipv0\0"); // IFLA_IFNAME
        assert_eq!(u32v(&attr(&top, 5)), 7); // IFLA_LINK
        assert_eq!(u32v(&attr(&top, 4)), 1400); // IFLA_MTU
        assert_eq!(u32v(&attr(&top, 28)) as i32, ns.as_raw_fd()); // IFLA_NET_NS_FD
        let info = attrs(&attr(&top, 18)); // IFLA_LINKINFO
        assert_eq!(attr(&info, 1), b"ipvlan\0");
        let data = attrs(&attr(&info, 2));
        assert_eq!(u16v(&attr(&data, 1)), 2); // IFLA_IPVLAN_MODE = L3S
        assert_eq!(u16v(&attr(&data, 2)), 1); // IFLA_IPVLAN_FLAGS = PRIVATE
    }

    #[test]
    fn ipvlan_request_always_sends_the_bridge_flag_and_nothing_optional() {
        let req = IpvlanRequest {
            name: "x",
            parent: 2,
            mode: IpvlanMode::L2,
            flag: IpvlanFlag::Bridge,
            mtu: None,
            netns: None,
        };
        let bytes = encode(RouteNetlinkMessage::NewLink(ipvlan_message(&req)), 0, 1);
        let top = attrs(&bytes[NLMSG_HDRLEN + 16..]);
        assert!(top.iter().all(|(k, _)| *k != 4 && *k != 28), "{top:?}");
        let data = attrs(&attr(&attrs(&attr(&top, 18)), 2));
        assert_eq!(u16v(&attr(&data, 1)), 0);
        assert_eq!(u16v(&attr(&data, 2)), 0);
    }

    #[test]
    fn vlan_request_carries_id_and_parent() {
        let bytes = encode(
            RouteNetlinkMessage::NewLink(vlan_message("eth0.10", 3, 10)),
            0,
            1,
        );
        let top = attrs(&bytes[NLMSG_HDRLEN + 16..]);
        assert_eq!(u32v(&attr(&top, 5)), 3);
        let info = attrs(&attr(&top, 18));
        assert_eq!(attr(&info, 1), b"vlan\0");
        assert_eq!(u16v(&attr(&attrs(&attr(&info, 2)), 1)), 10);
    }

    #[test]
    fn ipv6_address_is_nodad_in_header_and_attribute() {
        let net: IpNetwork = "2001:db8::5/64".parse().unwrap();
        let bytes = encode(
            RouteNetlinkMessage::NewAddress(address_message(4, net)),
            0,
            1,
        );
        assert_eq!(u16v(&bytes[4..]), 20, "RTM_NEWADDR");
        let h = &bytes[NLMSG_HDRLEN..NLMSG_HDRLEN + 8];
        assert_eq!(h[0], libc::AF_INET6 as u8);
        assert_eq!(h[1], 64);
        assert_eq!(h[2], 0x02, "IFA_F_NODAD in ifa_flags");
        assert_eq!(u32v(&h[4..]), 4);
        let a = attrs(&bytes[NLMSG_HDRLEN + 8..]);
        assert_eq!(u32v(&attr(&a, 8)), 0x02, "IFA_FLAGS");
        assert_eq!(
            attr(&a, 1),
            "2001:db8::5"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
    }

    #[test]
    fn ipv4_address_has_local_and_broadcast() {
        let net: IpNetwork = "192.168.1.10/24".parse().unwrap();
        let bytes = encode(
            RouteNetlinkMessage::NewAddress(address_message(4, net)),
            0,
            1,
        );
        let a = attrs(&bytes[NLMSG_HDRLEN + 8..]);
        assert_eq!(attr(&a, 2), [192, 168, 1, 10]); // IFA_LOCAL
        assert_eq!(attr(&a, 1), [192, 168, 1, 10]); // IFA_ADDRESS
        assert_eq!(attr(&a, 4), [192, 168, 1, 255]); // IFA_BROADCAST
        let host: IpNetwork = "10.0.0.1/32".parse().unwrap();
        let bytes = encode(
            RouteNetlinkMessage::NewAddress(address_message(4, host)),
            0,
            1,
        );
        assert!(attrs(&bytes[NLMSG_HDRLEN + 8..])
            .iter()
            .all(|(k, _)| *k != 4));
    }

    #[test]
    fn default_routes_main_table_with_and_without_gateway() {
        let bytes = encode(
            RouteNetlinkMessage::NewRoute(default_route_message(false, None, 6)),
            0,
            1,
        );
        assert_eq!(u16v(&bytes[4..]), 24, "RTM_NEWROUTE");
        let h = &bytes[NLMSG_HDRLEN..NLMSG_HDRLEN + 12];
        assert_eq!(
            (h[0], h[1], h[4], h[6], h[7]),
            (libc::AF_INET as u8, 0, 254, 253, 1),
            "family, dst_len, table, scope link, unicast"
        );
        let a = attrs(&bytes[NLMSG_HDRLEN + 12..]);
        assert_eq!(u32v(&attr(&a, 4)), 6); // RTA_OIF
        assert!(a.iter().all(|(k, _)| *k != 5), "no RTA_GATEWAY");

        let gw: IpAddr = "fe80::1".parse().unwrap();
        let bytes = encode(
            RouteNetlinkMessage::NewRoute(default_route_message(true, Some(gw), 6)),
            0,
            1,
        );
        let h = &bytes[NLMSG_HDRLEN..NLMSG_HDRLEN + 12];
        assert_eq!((h[0], h[6]), (libc::AF_INET6 as u8, 0));
        let a = attrs(&bytes[NLMSG_HDRLEN + 12..]);
        assert_eq!(
            attr(&a, 5),
            "fe80::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(u32v(&attr(&a, 4)), 6);
    }

    /// An NLMSG_ERROR payload after the code: capped request header, then
    /// an NLMSGERR_ATTR_MSG attribute.
    fn error_payload(text: &str) -> Vec<u8> {
        let mut p = vec![0u8; NLMSG_HDRLEN];
        p[0..4].copy_from_slice(&40u32.to_ne_bytes()); // request's length, ignored when capped
        let len = 4 + text.len() + 1;
        p.extend_from_slice(&(len as u16).to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(text.as_bytes());
        p.push(0);
        while p.len() % 4 != 0 {
            p.push(0);
        }
        p
    }

    #[test]
    fn extack_text_is_read_from_capped_errors() {
        let p = error_payload("Unknown device type");
        assert_eq!(
            parse_extack(NLM_F_CAPPED | NLM_F_ACK_TLVS, &p).as_deref(),
            Some("Unknown device type")
        );
        assert_eq!(
            parse_extack(NLM_F_CAPPED, &p),
            None,
            "no TLVs flag, no text"
        );
    }

    #[test]
    fn extack_text_is_read_after_an_uncapped_request_copy() {
        // Uncapped: the whole request (length 20: header + 4 bytes) precedes the TLVs.
        let mut p = vec![0u8; 20];
        p[0..4].copy_from_slice(&20u32.to_ne_bytes());
        let tail = error_payload("Device is already in use.");
        p.extend_from_slice(&tail[NLMSG_HDRLEN..]);
        assert_eq!(
            parse_extack(NLM_F_ACK_TLVS, &p).as_deref(),
            Some("Device is already in use")
        );
        assert_eq!(
            parse_extack(NLM_F_ACK_TLVS, &p[..10]),
            None,
            "truncated payload is not a panic"
        );
    }

    #[test]
    fn module_missing_is_worded_with_the_module() {
        let f = Failure::Kernel {
            errno: libc::EOPNOTSUPP,
            ext: Some("Unknown device type".into()),
        };
        let e = create_error(f, "create ipvlan link x", "x", "ipvlan");
        assert!(
            e.to_string()
                .contains("no ipvlan support (module ipvlan not loaded/available)"),
            "{e}"
        );
        assert_eq!(e.errno(), Some(libc::EOPNOTSUPP));
        let f = Failure::Kernel {
            errno: libc::EEXIST,
            ext: None,
        };
        let e = create_error(f, "create dummy link d0", "d0", "dummy");
        assert_eq!(
            e.to_string(),
            "create dummy link d0: link d0 already exists"
        );
        let f = Failure::Kernel {
            errno: libc::EPERM,
            ext: None,
        };
        let e = create_error(f, "create dummy link d0", "d0", "dummy");
        assert_eq!(
            e.to_string(),
            "netlink create dummy link d0: Operation not permitted (errno 1)"
        );
    }

    #[test]
    fn link_message_is_read_into_link() {
        let mut m = ipvlan_message(&IpvlanRequest {
            name: "ipv3",
            parent: 2,
            mode: IpvlanMode::L3,
            flag: IpvlanFlag::Vepa,
            mtu: Some(1500),
            netns: None,
        });
        m.header.index = 9;
        m.header.flags = LinkFlags::Up;
        let l = link_from_message(&m);
        assert_eq!(
            l,
            Link {
                index: 9,
                name: "ipv3".into(),
                kind: Some("ipvlan".into()),
                parent: Some(2),
                mtu: 1500,
                up: true,
                vlan_id: None,
                ipvlan: Some((IpvlanMode::L3, IpvlanFlag::Vepa)),
            }
        );
        let v = link_from_message(&vlan_message("e.5", 2, 5));
        assert_eq!(
            (v.kind.as_deref(), v.vlan_id, v.up, v.ipvlan),
            (Some("vlan"), Some(5), false, None)
        );
    }
}
