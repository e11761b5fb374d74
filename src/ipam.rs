//! The pure address allocator: which addresses of a subnet may be handed out,
//! and a two-level free bitmap that finds a free one in constant time
//! whatever the number of leases.
//!
//! Nothing here touches the disk: the bitmap lives in any [`Words`] store
//! (a `Vec<u64>` in tests, a file in `store`). The store keeps the lease
//! files as the truth and this bitmap as a hint, with one invariant kept by
//! the order of its writes: a bit is set only while the lease file exists.
//!
//! Layout of the words: `[cursor] [summary words] [data words]`. Data bit
//! `s` is set when slot `s` is taken; summary bit `w` is set when data word
//! `w` is full. Padding bits past the last slot are set so they are never
//! chosen. Allocation is next-fit from the cursor (like host-local), so a
//! released address is not handed out again at once.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::error::{Error, Result};
use crate::network::{ip_to_u128, is_network_or_broadcast, subnet_len, u128_to_ip, Subnet};

/// At most this many addresses of a subnet are handed out dynamically (the
/// bitmap is then 128 KiB). Static addresses may be anywhere in the subnet.
pub const MAX_SLOTS: u64 = 1 << 20;

/// The addresses one subnet hands out: a window of slots starting at the
/// first address of its `--ip-range` (or of the subnet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    subnet: IpNetwork,
    gateway: Option<IpAddr>,
    base: u128,
    slots: u64,
}

impl Pool {
    pub fn new(s: &Subnet) -> Pool {
        let window = s.ip_range.unwrap_or(s.subnet);
        let slots = subnet_len(&window).min(MAX_SLOTS as u128) as u64;
        Pool { subnet: s.subnet, gateway: s.gateway, base: ip_to_u128(window.network()), slots }
    }

    pub fn slots(&self) -> u64 {
        self.slots
    }

    pub fn addr(&self, slot: u64) -> IpAddr {
        u128_to_ip(self.base + slot as u128, self.subnet.is_ipv6())
    }

    pub fn slot_of(&self, ip: IpAddr) -> Option<u64> {
        if ip.is_ipv6() != self.subnet.is_ipv6() {
            return None;
        }
        let v = ip_to_u128(ip);
        (v >= self.base && v - self.base < self.slots as u128).then(|| (v - self.base) as u64)
    }

    /// Slots never handed out: the network, broadcast and gateway addresses.
    pub fn reserved(&self) -> impl Iterator<Item = u64> + '_ {
        let net = self.subnet;
        let mut special = Vec::with_capacity(3);
        if subnet_len(&net) > 2 {
            special.push(net.network());
            if net.is_ipv4() {
                special.push(net.broadcast());
            }
        }
        special.extend(self.gateway);
        special.into_iter().filter_map(move |ip| self.slot_of(ip))
    }

    pub fn subnet(&self) -> IpNetwork {
        self.subnet
    }

    /// The address with the subnet's prefix, as it goes on the interface.
    pub fn with_prefix(&self, ip: IpAddr) -> IpNetwork {
        IpNetwork::new(ip, self.subnet.prefix()).expect("prefix of a valid subnet")
    }
}

/// Check a requested static address against a subnet.
pub fn check_static(s: &Subnet, ip: IpAddr) -> Result<()> {
    if !s.subnet.contains(ip) {
        return Err(Error::new(format!("address {ip} is outside subnet {}", s.subnet)));
    }
    if is_network_or_broadcast(&s.subnet, ip) {
        return Err(Error::new(format!("address {ip} is the network or broadcast address of {}", s.subnet)));
    }
    if s.gateway == Some(ip) {
        return Err(Error::new(format!("address {ip} is the gateway of {}", s.subnet)));
    }
    Ok(())
}

/// Word storage for a bitmap.
pub trait Words {
    fn get(&mut self, i: usize) -> Result<u64>;
    fn set(&mut self, i: usize, v: u64) -> Result<()>;
}

impl Words for Vec<u64> {
    fn get(&mut self, i: usize) -> Result<u64> {
        self.as_slice().get(i).copied().ok_or_else(|| Error::new(format!("bitmap word {i} out of range")))
    }
    fn set(&mut self, i: usize, v: u64) -> Result<()> {
        let len = self.len();
        *self.get_mut(i).ok_or_else(|| Error::new(format!("bitmap word {i} out of range {len}")))? = v;
        Ok(())
    }
}

/// The shape of a bitmap for a number of slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitmap {
    slots: u64,
    data_words: usize,
    summary_words: usize,
}

impl Bitmap {
    pub fn new(slots: u64) -> Bitmap {
        let data_words = slots.div_ceil(64) as usize;
        Bitmap { slots, data_words, summary_words: data_words.div_ceil(64) }
    }

    /// Words the whole bitmap takes, cursor included.
    pub fn len(&self) -> usize {
        1 + self.summary_words + self.data_words
    }

    pub fn is_empty(&self) -> bool {
        self.slots == 0
    }

    /// Index of the first summary word (after the cursor).
    pub fn summary_range(&self) -> std::ops::Range<usize> {
        1..1 + self.summary_words
    }

    fn data(&self, w: usize) -> usize {
        1 + self.summary_words + w
    }

    fn summary(&self, w: usize) -> usize {
        1 + w / 64
    }

    /// Write an empty bitmap: padding bits set, then the reserved slots.
    pub fn init(&self, ws: &mut impl Words, reserved: impl Iterator<Item = u64>) -> Result<()> {
        for i in 0..self.len() {
            ws.set(i, 0)?;
        }
        let tail = self.slots % 64;
        if tail != 0 {
            let last = self.data_words - 1;
            ws.set(self.data(last), !0u64 << tail)?;
        }
        // Summary bits of padding words past the last data word.
        let tail_words = self.data_words % 64;
        if tail_words != 0 {
            let last = self.summary_words - 1;
            ws.set(1 + last, !0u64 << tail_words)?;
        }
        for s in reserved {
            self.mark(ws, s, true)?;
        }
        Ok(())
    }

    /// Mark a slot taken or free, keeping the summary in step.
    pub fn mark(&self, ws: &mut impl Words, slot: u64, taken: bool) -> Result<()> {
        if slot >= self.slots {
            return Err(Error::new(format!("slot {slot} out of range {}", self.slots)));
        }
        let w = (slot / 64) as usize;
        let bit = 1u64 << (slot % 64);
        let old = ws.get(self.data(w))?;
        let new = if taken { old | bit } else { old & !bit };
        if new != old {
            ws.set(self.data(w), new)?;
        }
        let si = self.summary(w);
        let sbit = 1u64 << (w % 64);
        let s_old = ws.get(si)?;
        let s_new = if new == !0 { s_old | sbit } else { s_old & !sbit };
        if s_new != s_old {
            ws.set(si, s_new)?;
        }
        Ok(())
    }

    pub fn is_taken(&self, ws: &mut impl Words, slot: u64) -> Result<bool> {
        if slot >= self.slots {
            return Ok(true);
        }
        Ok(ws.get(self.data((slot / 64) as usize))? & (1u64 << (slot % 64)) != 0)
    }

    /// Move the next-fit cursor past a slot just handed out.
    pub fn advance(&self, ws: &mut impl Words, slot: u64) -> Result<()> {
        ws.set(0, (slot + 1) % self.slots.max(1))
    }

    /// The first free slot at or after the cursor, wrapping around; `None`
    /// when every slot is taken. Reads at most every summary word plus a few
    /// data words, however many slots are taken.
    pub fn find_free(&self, ws: &mut impl Words) -> Result<Option<u64>> {
        if self.slots == 0 {
            return Ok(None);
        }
        let cursor = ws.get(0)? % self.slots;
        let start = (cursor / 64) as usize;
        let low_bits = (1u64 << (cursor % 64)) - 1;
        // The cursor's own word, from the cursor on.
        let word = ws.get(self.data(start))?;
        if word | low_bits != !0 {
            return Ok(Some(start as u64 * 64 + (word | low_bits).trailing_ones() as u64));
        }
        // The other words in order, wrapping, then the cursor's word below it.
        let n = self.data_words;
        let mut visited = 1;
        let mut w = (start + 1) % n;
        while visited <= n {
            let summary = ws.get(self.summary(w))?;
            if w % 64 == 0 && summary == !0 && w + 64 <= n && visited + 64 <= n {
                w = (w + 64) % n; // a whole group of 64 full words
                visited += 64;
                continue;
            }
            if summary & (1u64 << (w % 64)) == 0 {
                let word = ws.get(self.data(w))?;
                if word != !0 {
                    return Ok(Some(w as u64 * 64 + word.trailing_ones() as u64));
                }
            }
            w = (w + 1) % n;
            visited += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(s: &str, gw: Option<&str>, range: Option<&str>) -> Subnet {
        Subnet {
            subnet: s.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            ip_range: range.map(|r| r.parse().unwrap()),
        }
    }

    fn new_map(pool: &Pool) -> (Bitmap, Vec<u64>) {
        let bm = Bitmap::new(pool.slots());
        let mut ws = vec![0; bm.len()];
        bm.init(&mut ws, pool.reserved()).unwrap();
        (bm, ws)
    }

    fn take(bm: &Bitmap, ws: &mut Vec<u64>) -> Option<u64> {
        let s = bm.find_free(ws).unwrap()?;
        bm.mark(ws, s, true).unwrap();
        bm.advance(ws, s).unwrap();
        Some(s)
    }

    #[test]
    fn slash24_hands_out_every_host_but_gateway_once() {
        let pool = Pool::new(&subnet("192.168.1.0/24", Some("192.168.1.1"), None));
        let (bm, mut ws) = new_map(&pool);
        let mut got = std::collections::BTreeSet::new();
        while let Some(s) = take(&bm, &mut ws) {
            assert!(got.insert(pool.addr(s)), "duplicate {}", pool.addr(s));
        }
        assert_eq!(got.len(), 253);
        assert_eq!(got.first().unwrap().to_string(), "192.168.1.2");
        for bad in ["192.168.1.0", "192.168.1.1", "192.168.1.255"] {
            assert!(!got.contains(&bad.parse().unwrap()), "{bad} handed out");
        }
    }

    #[test]
    fn next_fit_does_not_reuse_at_once_then_wraps() {
        let pool = Pool::new(&subnet("10.0.0.0/29", Some("10.0.0.1"), None));
        let (bm, mut ws) = new_map(&pool);
        let a = take(&bm, &mut ws).unwrap();
        let b = take(&bm, &mut ws).unwrap();
        bm.mark(&mut ws, a, false).unwrap();
        let c = take(&bm, &mut ws).unwrap();
        assert!(c > b, "released slot reused at once");
        while take(&bm, &mut ws).is_some() {}
        bm.mark(&mut ws, a, false).unwrap();
        assert_eq!(take(&bm, &mut ws), Some(a), "wraps around to the freed slot");
    }

    #[test]
    fn ip_range_limits_the_window() {
        let pool = Pool::new(&subnet("10.1.0.0/16", Some("10.1.0.1"), Some("10.1.4.0/30")));
        let (bm, mut ws) = new_map(&pool);
        let mut got = vec![];
        while let Some(s) = take(&bm, &mut ws) {
            got.push(pool.addr(s).to_string());
        }
        assert_eq!(got, ["10.1.4.0", "10.1.4.1", "10.1.4.2", "10.1.4.3"]);
    }

    #[test]
    fn ipv6_window_is_capped() {
        let pool = Pool::new(&subnet("2001:db8::/64", Some("2001:db8::1"), None));
        assert_eq!(pool.slots(), MAX_SLOTS);
        let (bm, mut ws) = new_map(&pool);
        assert_eq!(bm.len(), 1 + 256 + 16384);
        let s = take(&bm, &mut ws).unwrap();
        assert_eq!(pool.addr(s).to_string(), "2001:db8::2");
    }

    #[test]
    fn finds_the_last_free_slot_in_a_nearly_full_slash16() {
        let pool = Pool::new(&subnet("10.9.0.0/16", Some("10.9.0.1"), None));
        let (bm, mut ws) = new_map(&pool);
        for s in 0..pool.slots() {
            bm.mark(&mut ws, s, true).unwrap();
        }
        assert_eq!(bm.find_free(&mut ws).unwrap(), None);
        for free in [12345u64, 2, 65534, 40000] {
            bm.mark(&mut ws, free, false).unwrap();
            ws[0] = (free + 777) % pool.slots(); // cursor far from it
            assert_eq!(bm.find_free(&mut ws).unwrap(), Some(free));
            bm.mark(&mut ws, free, true).unwrap();
        }
    }

    #[test]
    fn counts_reads_stay_bounded_when_full() {
        // Allocation cost must not grow with occupancy: count word reads.
        struct Counting(Vec<u64>, usize);
        impl Words for Counting {
            fn get(&mut self, i: usize) -> Result<u64> { self.1 += 1; self.0.get(i) }
            fn set(&mut self, i: usize, v: u64) -> Result<()> { self.0.set(i, v) }
        }
        let pool = Pool::new(&subnet("10.9.0.0/16", Some("10.9.0.1"), None));
        let bm = Bitmap::new(pool.slots());
        let mut ws = Counting(vec![0; bm.len()], 0);
        bm.init(&mut ws, pool.reserved()).unwrap();
        for s in 0..pool.slots() {
            bm.mark(&mut ws, s, true).unwrap();
        }
        bm.mark(&mut ws, 65000, false).unwrap();
        ws.1 = 0;
        ws.0[0] = 65001; // the worst case: a full turn around the map
        assert_eq!(bm.find_free(&mut ws).unwrap(), Some(65000));
        assert!(ws.1 < 200, "{} reads to find a free slot in a full /16", ws.1);
    }

    #[test]
    fn static_addresses_checked() {
        let s = subnet("192.168.1.0/24", Some("192.168.1.1"), None);
        check_static(&s, "192.168.1.10".parse().unwrap()).unwrap();
        for (ip, word) in [("192.168.2.1", "outside"), ("192.168.1.0", "network"), ("192.168.1.255", "broadcast"), ("192.168.1.1", "gateway")] {
            let e = check_static(&s, ip.parse().unwrap()).unwrap_err().to_string();
            assert!(e.contains(ip) && e.contains(word), "{e}");
        }
    }

    #[test]
    fn random_churn_never_duplicates() {
        // A small deterministic PRNG: take and release at random, check the
        // bitmap against a model.
        let pool = Pool::new(&subnet("10.2.0.0/22", Some("10.2.0.1"), None));
        let (bm, mut ws) = new_map(&pool);
        let mut model = std::collections::BTreeSet::new();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20000 {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            if x % 3 != 0 {
                if let Some(s) = take(&bm, &mut ws) {
                    assert!(model.insert(s), "slot {s} handed out twice");
                    assert!(!pool.reserved().any(|r| r == s));
                } else {
                    assert_eq!(model.len() as u64, pool.slots() - 3);
                }
            } else if let Some(&s) = model.iter().nth((x as usize / 3) % model.len().max(1)) {
                model.remove(&s);
                bm.mark(&mut ws, s, false).unwrap();
            }
        }
    }
}
