//! The passive port range (`--pasv-ports LO-HI`) and its split into one
//! disjoint slice per shard, so each shard binds its passive listeners
//! with no lock and no cross-shard hand-off. Pure values; the listeners
//! themselves are in [`super::passive`].

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn len(&self) -> usize {
        (self.hi - self.lo) as usize + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Splits the range into `parts` contiguous, disjoint slices whose
    /// sizes differ by at most one: each shard owns one and binds its
    /// passive listeners there without asking anyone.
    pub fn split(&self, parts: usize) -> Vec<PortRange> {
        let n = self.len();
        (0..parts)
            .map(|i| {
                let start = self.lo as usize + i * n / parts;
                let end = self.lo as usize + (i + 1) * n / parts - 1;
                PortRange {
                    lo: start as u16,
                    hi: end as u16,
                }
            })
            .collect()
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_and_complete() {
        for (lo, hi, parts) in [
            (50000u16, 50999u16, 1usize),
            (50000, 50999, 3),
            (10, 13, 4),
            (10, 20, 2),
            (1, 65535, 7),
        ] {
            let r = PortRange { lo, hi };
            let slices = r.split(parts);
            assert_eq!(slices.len(), parts);
            assert_eq!(slices[0].lo, lo);
            assert_eq!(slices[parts - 1].hi, hi);
            for w in slices.windows(2) {
                assert_eq!(w[0].hi + 1, w[1].lo, "{slices:?}");
            }
            let sizes: Vec<usize> = slices.iter().map(|s| s.len()).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{sizes:?}");
            assert_eq!(sizes.iter().sum::<usize>(), r.len());
        }
    }
}
