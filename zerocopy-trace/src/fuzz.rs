//! A small deterministic fuzzer for the parsers of kernel-provided text (tracepoint `format`
//! files, /proc, mount tables): random mutations of real samples, fed to each parser, which
//! must return an error or a value and never panic. Tests only.

/// xorshift64*: deterministic, so a failure reproduces.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to line-based parsers, besides random ones.
const INTERESTING: &[u8] = b":;\t\n \0[]*0123456789-abcdefxyz\xff";

/// One mutation of `sample`: bytes flipped, inserted, deleted, or a span duplicated or cut.
pub fn mutate(rng: &mut Rng, sample: &[u8]) -> Vec<u8> {
    let mut out = sample.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            1 => out.insert(at, rng.next() as u8),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => {
                let end = (at + rng.below(64)).min(out.len());
                let span = out[at..end].to_vec();
                out.splice(at..at, span);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Runs `parse` on `rounds` mutations of each sample (as lossy UTF-8 text).
pub fn fuzz_text(samples: &[&str], rounds: usize, mut parse: impl FnMut(&str)) {
    let mut rng = Rng::new(0x5eed);
    for sample in samples {
        parse(sample);
        for _ in 0..rounds {
            let bytes = mutate(&mut rng, sample.as_bytes());
            parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
