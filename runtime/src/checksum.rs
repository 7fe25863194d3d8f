//! xxHash64 (Yann Collet's XXH64), written out so the runtime needs no hashing crate.
//!
//! The artifact checksum is XXH64 with seed 0. It runs at several GB/s, so checking a
//! 100 MB artifact costs a few tens of milliseconds. The tests at the bottom compare
//! against vectors produced by the reference implementation (the `xxhash` Python package).

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
fn read_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap())
}

#[inline(always)]
fn read_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

#[inline(always)]
fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2)).rotate_left(31).wrapping_mul(P1)
}

#[inline(always)]
fn merge(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

/// A streaming XXH64 hasher: `update` any number of times, then `finish`.
#[derive(Clone, Debug)]
pub struct Xxh64 {
    seed: u64,
    v: [u64; 4],
    total: u64,
    buf: [u8; 32],
    buf_len: usize,
}

impl Xxh64 {
    pub fn new(seed: u64) -> Self {
        Xxh64 {
            seed,
            v: [
                seed.wrapping_add(P1).wrapping_add(P2),
                seed.wrapping_add(P2),
                seed,
                seed.wrapping_sub(P1),
            ],
            total: 0,
            buf: [0; 32],
            buf_len: 0,
        }
    }

    fn stripe(v: &mut [u64; 4], s: &[u8]) {
        v[0] = round(v[0], read_u64(&s[0..]));
        v[1] = round(v[1], read_u64(&s[8..]));
        v[2] = round(v[2], read_u64(&s[16..]));
        v[3] = round(v[3], read_u64(&s[24..]));
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (32 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 32 {
                return;
            }
            let buf = self.buf;
            Self::stripe(&mut self.v, &buf);
            self.buf_len = 0;
        }
        let mut chunks = data.chunks_exact(32);
        for s in &mut chunks {
            Self::stripe(&mut self.v, s);
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub fn finish(&self) -> u64 {
        let mut h = if self.total >= 32 {
            let v = self.v;
            let mut h = v[0]
                .rotate_left(1)
                .wrapping_add(v[1].rotate_left(7))
                .wrapping_add(v[2].rotate_left(12))
                .wrapping_add(v[3].rotate_left(18));
            for lane in v {
                h = merge(h, lane);
            }
            h
        } else {
            self.seed.wrapping_add(P5)
        };
        h = h.wrapping_add(self.total);
        let mut t = &self.buf[..self.buf_len];
        while t.len() >= 8 {
            h ^= round(0, read_u64(t));
            h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
            t = &t[8..];
        }
        if t.len() >= 4 {
            h ^= u64::from(read_u32(t)).wrapping_mul(P1);
            h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
            t = &t[4..];
        }
        for &b in t {
            h ^= u64::from(b).wrapping_mul(P5);
            h = h.rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^= h >> 32;
        h
    }
}

/// XXH64 of `data` with `seed`, in one call.
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    let mut h = Xxh64::new(seed);
    h.update(data);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_strings() {
        let cases: [(&[u8], u64, u64); 6] = [
            (b"", 0xef46db3751d8e999, 0xac75fda2929b17ef),
            (b"a", 0xd24ec4f1a98c6e5b, 0x393da8b78992279b),
            (b"abc", 0x44bc2cf5ad770999, 0x1318df30094a85fd),
            (b"message digest", 0x066ed728fceeb3be, 0xa12eb2b52cde838e),
            (b"abcdefghijklmnopqrstuvwxyz", 0xcfe1f278fa89835c, 0x06e8b29d26278bb8),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                0xe04a477f19ee145d,
                0x6ce04b7d2aed6957,
            ),
        ];
        for (s, h0, h1) in cases {
            assert_eq!(xxh64(s, 0), h0, "{s:?}");
            assert_eq!(xxh64(s, 0x9E3779B1), h1, "{s:?} seeded");
        }
    }

    /// Every tail path (0..=31 leftover bytes, 1/4/8-byte steps) and the 32-byte stripes.
    #[test]
    fn known_lengths() {
        let buf: Vec<u8> = (0..1000u32).map(|i| ((i * 31 + 7) & 0xff) as u8).collect();
        let cases: [(usize, u64, u64); 15] = [
            (0, 0xef46db3751d8e999, 0x95584af7701f808d),
            (1, 0xa96c7f0ce858bbb7, 0x496fc29a1e753bd7),
            (3, 0x56e6957632a487f9, 0x94ff877cd86385be),
            (4, 0xc60d15b1e3ff8f04, 0x1034b01f61e3b2e6),
            (7, 0xafbefc3d6c6f9a8e, 0xd06aa9dbe7add6d1),
            (8, 0x3da5c7aa269683e0, 0x23befc2f0d90da1a),
            (15, 0xae2a37eb9357caa7, 0x634d78fb3228f038),
            (16, 0xa19ad429b02bc413, 0x9383d5f07c7d635a),
            (31, 0x4a74f3a1a39ad4a1, 0xbff21e6871cdf167),
            (32, 0x8d57d6a4671cc43d, 0x7bdfe9fbcc771266),
            (33, 0x62c9fd21ed857664, 0x5a23927b0946b212),
            (63, 0x5c320a0d2707057f, 0x60148113d74960d3),
            (64, 0x7bbabbc45729d17e, 0xeeff42e996f0f7d5),
            (100, 0xefa0ad2d3e70c151, 0x4f2e446ab943e539),
            (1000, 0x99594f4828043d35, 0xcbd42ae414e71a03),
        ];
        for (n, h0, h1) in cases {
            assert_eq!(xxh64(&buf[..n], 0), h0, "len {n}");
            assert_eq!(xxh64(&buf[..n], 12345), h1, "len {n} seeded");
        }
    }

    #[test]
    fn streaming_matches_one_shot_for_every_split() {
        let buf: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let want = xxh64(&buf, 7);
        for a in 0..buf.len() {
            for b in [a, a + 1, a + 31, a + 32, a + 33, buf.len()] {
                let b = b.min(buf.len());
                let mut h = Xxh64::new(7);
                h.update(&buf[..a]);
                h.update(&buf[a..b]);
                h.update(&buf[b..]);
                assert_eq!(h.finish(), want, "split at {a}, {b}");
            }
        }
    }
}
