//! A small libpcap writer for hand-made captures: Ethernet, IPv4 and TCP headers around
//! chosen payloads, with the sequence numbers the test wants (in order, out of order,
//! overlapping), SYN handshakes and FINs, so the tshark tests can build the hard cases a
//! live capture rarely shows.
#![allow(dead_code)]

use std::net::Ipv4Addr;

/// One TCP connection: its endpoints and the next sequence number of each side.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub client: (Ipv4Addr, u16),
    pub server: (Ipv4Addr, u16),
    /// Next relative sequence number: client's, server's.
    next: [u32; 2],
    /// Initial sequence numbers: client's, server's.
    isn: [u32; 2],
}

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// A capture being built: packets one millisecond apart.
#[derive(Default)]
pub struct Pcap {
    packets: Vec<(u64, Vec<u8>)>,
}

impl Conn {
    /// A connection from 127.0.0.1:`client_port` to 127.0.0.1:`server_port`.
    pub fn local(client_port: u16, server_port: u16) -> Conn {
        let lo = Ipv4Addr::LOCALHOST;
        let isn = [1_000_000 + u32::from(client_port) * 7, 2_000_000 + u32::from(server_port) * 13];
        Conn { client: (lo, client_port), server: (lo, server_port), next: [1, 1], isn }
    }

    /// The same endpoints again, with new initial sequence numbers (the ports reused).
    pub fn again(&self) -> Conn {
        let mut c = *self;
        c.isn = [self.isn[0].wrapping_add(500_000), self.isn[1].wrapping_add(700_000)];
        c.next = [1, 1];
        c
    }
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
        sum += word;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Pcap {
    fn push(&mut self, conn: &Conn, from_server: bool, seq: u32, flags: u8, payload: &[u8]) {
        let (src, dst) = if from_server { (conn.server, conn.client) } else { (conn.client, conn.server) };
        let side = usize::from(from_server);
        let ack =
            if flags & SYN != 0 && !from_server { 0 } else { conn.isn[1 - side].wrapping_add(conn.next[1 - side]) };
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend(src.1.to_be_bytes());
        tcp.extend(dst.1.to_be_bytes());
        tcp.extend(conn.isn[side].wrapping_add(seq).to_be_bytes());
        tcp.extend(ack.to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(if flags & SYN != 0 && !from_server { SYN } else { flags | ACK });
        tcp.extend(65535u16.to_be_bytes());
        tcp.extend([0, 0, 0, 0]);
        // The TCP checksum over the pseudo-header, so that no checker complains.
        let mut pseudo = Vec::new();
        pseudo.extend(src.0.octets());
        pseudo.extend(dst.0.octets());
        pseudo.extend([0, 6]);
        pseudo.extend(((tcp.len() + payload.len()) as u16).to_be_bytes());
        pseudo.extend(&tcp);
        pseudo.extend(payload);
        let sum = checksum(&pseudo);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        tcp.extend(payload);
        let mut ip = vec![0x45, 0];
        ip.extend(((20 + tcp.len()) as u16).to_be_bytes());
        ip.extend([0, 0, 0x40, 0, 64, 6, 0, 0]);
        ip.extend(src.0.octets());
        ip.extend(dst.0.octets());
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut frame = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        frame.extend(ip);
        frame.extend(tcp);
        let time = 1_000 * (self.packets.len() as u64 + 1);
        self.packets.push((time, frame));
    }

    /// The three-way handshake.
    pub fn open(&mut self, conn: &mut Conn) {
        conn.next = [0, 0];
        self.push(conn, false, 0, SYN, &[]);
        conn.next[0] = 1;
        self.push(conn, true, 0, SYN, &[]);
        conn.next[1] = 1;
        self.push(conn, false, 1, 0, &[]);
    }

    /// Both sides close (FIN, FIN, ACK).
    pub fn close(&mut self, conn: &mut Conn) {
        let (c, s) = (conn.next[0], conn.next[1]);
        self.push(conn, false, c, FIN, &[]);
        conn.next[0] = c + 1;
        self.push(conn, true, s, FIN, &[]);
        conn.next[1] = s + 1;
        self.push(conn, false, c + 1, 0, &[]);
    }

    /// `bytes` sent in order by one side, in one segment.
    pub fn send(&mut self, conn: &mut Conn, from_server: bool, bytes: &[u8]) {
        let side = usize::from(from_server);
        let seq = conn.next[side];
        self.push(conn, from_server, seq, PSH, bytes);
        conn.next[side] = seq + bytes.len() as u32;
    }

    /// Segments of one side's next `bytes`, each given as a byte range of them, sent in
    /// the order listed (out of order, overlapping, repeated: as the test wants). The
    /// side's sequence number then moves past all of `bytes`.
    pub fn send_pieces(&mut self, conn: &mut Conn, from_server: bool, bytes: &[u8], pieces: &[(usize, usize)]) {
        let side = usize::from(from_server);
        let base = conn.next[side];
        for &(from, to) in pieces {
            self.push(conn, from_server, base + from as u32, PSH, &bytes[from..to]);
        }
        conn.next[side] = base + bytes.len() as u32;
    }

    /// The number of packets so far.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether there is no packet yet.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The capture in libpcap format (Ethernet).
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(0xa1b2_c3d4u32.to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend([0u8; 8]);
        out.extend(65535u32.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        for (micros, frame) in &self.packets {
            out.extend(((micros / 1_000_000) as u32 + 1_780_000_000).to_le_bytes());
            out.extend(((micros % 1_000_000) as u32).to_le_bytes());
            out.extend((frame.len() as u32).to_le_bytes());
            out.extend((frame.len() as u32).to_le_bytes());
            out.extend(frame);
        }
        out
    }
}
